"""Alerting contract: rules, alert events (episodes), notification channels and deliveries.

Rules travel on the compacted ALERT_RULES topic (key: `rule_key(rule_id)`, value: an `AlertRule`
as JSON, a tombstone (null value) when a rule is deleted). The alert engine publishes an
`AlertEvent` on ALERTS (key: `server_key(server_id)`) for every state change of an episode:
`firing` when a condition has held for the rule's pending duration, `resolved` when the clear
condition has held for the clear duration. An episode's id is derived from the rule, the server,
the subject and the instant the condition began to hold (`episode_id`), so a replay, a restart or a
backtest of the same data produces the same ids; `event_id` adds the state, and is what stores and
notifiers deduplicate on.

Rule semantics (the evaluation code in `alerting.evaluation` is the reference):
- the condition is `value <comparison> threshold`, on each sample's own time (event time);
- the rule fires when the condition has held continuously for `for_seconds` (0: on the first
  breaching sample);
- a firing rule resolves when `value` is back on the safe side of `clear_threshold` (default:
  `threshold`) continuously for `clear_for_seconds`; between the two thresholds nothing changes
  (hysteresis), so a value hovering at the threshold does not flap;
- `disk` evaluates one mount (`subject`) or, with `subject` None, each mount separately (one
  episode per mount); `net_rx` / `net_tx` are rates in bytes/s derived from consecutive counters of
  one interface (a counter reset has no rate); `load1/5/15` are load averages;
- `no_data` fires when a server that has sent samples sends none for
  `no_data_intervals * interval_seconds`, and resolves when data returns.

The ChatOps threshold shape `{server_id, metric_type: cpu|memory|disk, threshold_value,
comparison: gt|lt, enabled}` maps onto rules with `rule_from_threshold` / `threshold_from_rule`;
the threshold's id is the rule's id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.canonical import UtcDatetime, _Payload

RuleMetric = Literal["cpu", "memory", "disk", "net_rx", "net_tx", "load1", "load5", "load15", "no_data"]
Comparison = Literal["gt", "gte", "lt", "lte"]
Severity = Literal["info", "warning", "critical"]
RuleOrigin = Literal["rule", "threshold", "code"]
AlertState = Literal["firing", "resolved"]

MAX_DURATION_SECONDS = 7 * 24 * 3600.0
RULE_NAME_MAX = 200
SUBJECT_MAX = 512
MAX_INTERVAL_SECONDS = 3600.0
MAX_NO_DATA_INTERVALS = 10_000
PERCENT_METRICS = frozenset({"cpu", "memory", "disk"})
SUBJECT_METRICS = frozenset({"disk", "net_rx", "net_tx"})

# What each field of a rule means, shared by the rule, its REST input and the threshold shape.
RULE_DOCS: dict[str, str] = {
    "rule_id": "the rule's id",
    "owner_id": "the user who made it; it covers only servers that user may see",
    "server_id": "the one server it watches; null: every server of its owner",
    "name": f"a name for it, 1 to {RULE_NAME_MAX} characters",
    "metric": "what it watches: cpu, memory, disk (percent), net_rx, net_tx (bytes/s of one interface), "
    "load1, load5, load15 (load averages), or no_data (a server that stopped sending)",
    "subject": f"for disk, net_rx and net_tx only: one mount or interface (at most {SUBJECT_MAX} "
    "characters); "
    "null: each mount or interface on its own",
    "comparison": "how a value is compared with the threshold: gt (>), gte (>=), lt (<), lte (<=)",
    "threshold": "the value the condition compares with, in the metric's unit (percent 0 to 100 for cpu, "
    "memory and disk); unused by no_data",
    "for_seconds": f"seconds the condition must hold before the rule fires, 0 to {MAX_DURATION_SECONDS:g}; "
    "0: on the first breaching sample",
    "clear_threshold": "the value it must get back past to resolve (hysteresis: not above the threshold of "
    "a gt/gte rule, not below that of a lt/lte one); null: the threshold itself",
    "clear_for_seconds": f"seconds the value must stay back past `clear_threshold` before the episode "
    f"resolves, 0 to {MAX_DURATION_SECONDS:g}",
    "severity": "how urgent its alerts are: info, warning or critical",
    "interval_seconds": f"the agents' expected interval between samples, in seconds (above 0, at most "
    f"{MAX_INTERVAL_SECONDS:g}); no_data waits `no_data_intervals` of them",
    "no_data_intervals": "intervals without a sample after which a no_data rule fires, "
    f"1 to {MAX_NO_DATA_INTERVALS}",
    "enabled": "false: the rule is kept but not evaluated",
    "origin": "where it comes from: rule (the rules API), threshold (the ChatOps thresholds API) or code "
    "(a rule the operator deployed as code)",
    "updated_at": "when it was last changed (UTC)",
}
EXAMPLE_RULE_ID = "5b6c7d8e-1f2a-4b3c-8d4e-9f0a1b2c3d4e"
EXAMPLE_OWNER_ID = "8a1e5c77-2b4d-4e0f-b3a9-6c2d1f0e9b84"
EXAMPLE_SERVER_ID = "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65"
EXAMPLE_TIME = "2026-01-01T12:00:00Z"


class AlertRule(_Payload):
    """One alert rule, as the API stores it and the engine evaluates it."""

    kind: Literal["alert_rule"] = Field(
        default="alert_rule", description="always `alert_rule` (the payload's kind)", examples=["alert_rule"]
    )
    rule_id: uuid.UUID = Field(description=RULE_DOCS["rule_id"], examples=[EXAMPLE_RULE_ID])
    owner_id: uuid.UUID = Field(description=RULE_DOCS["owner_id"], examples=[EXAMPLE_OWNER_ID])
    server_id: uuid.UUID | None = Field(
        default=None, description=RULE_DOCS["server_id"], examples=[EXAMPLE_SERVER_ID, None]
    )
    name: str = Field(
        min_length=1, max_length=RULE_NAME_MAX, description=RULE_DOCS["name"], examples=["CPU high"]
    )
    metric: RuleMetric = Field(description=RULE_DOCS["metric"], examples=["cpu"])
    subject: str | None = Field(
        default=None, max_length=SUBJECT_MAX, description=RULE_DOCS["subject"], examples=[None, "/var"]
    )
    comparison: Comparison = Field(default="gt", description=RULE_DOCS["comparison"], examples=["gt"])
    threshold: float = Field(default=0.0, description=RULE_DOCS["threshold"], examples=[90.0])
    for_seconds: float = Field(
        default=0.0, ge=0, le=MAX_DURATION_SECONDS, description=RULE_DOCS["for_seconds"], examples=[300.0]
    )
    clear_threshold: float | None = Field(
        default=None, description=RULE_DOCS["clear_threshold"], examples=[80.0, None]
    )
    clear_for_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description=RULE_DOCS["clear_for_seconds"],
        examples=[60.0],
    )
    severity: Severity = Field(default="warning", description=RULE_DOCS["severity"], examples=["critical"])
    interval_seconds: float = Field(
        default=10.0,
        gt=0,
        le=MAX_INTERVAL_SECONDS,
        description=RULE_DOCS["interval_seconds"],
        examples=[10.0],
    )
    no_data_intervals: int = Field(
        default=3, ge=1, le=MAX_NO_DATA_INTERVALS, description=RULE_DOCS["no_data_intervals"], examples=[3]
    )
    enabled: bool = Field(default=True, description=RULE_DOCS["enabled"], examples=[True])
    origin: RuleOrigin = Field(default="rule", description=RULE_DOCS["origin"], examples=["rule"])
    updated_at: UtcDatetime = Field(description=RULE_DOCS["updated_at"], examples=[EXAMPLE_TIME])

    @model_validator(mode="after")
    def _consistent(self) -> AlertRule:
        if self.subject is not None and self.metric not in SUBJECT_METRICS:
            raise ValueError(f"subject applies to disk and network rules only, not to {self.metric}")
        if self.metric in PERCENT_METRICS and not 0 <= self.threshold <= 100:
            raise ValueError(f"a {self.metric} threshold is a percentage between 0 and 100")
        clear = self.clear_threshold
        if clear is not None and self.metric != "no_data":
            if self.comparison in ("gt", "gte") and clear > self.threshold:
                raise ValueError("clear_threshold must not be above the threshold of a gt/gte rule")
            if self.comparison in ("lt", "lte") and clear < self.threshold:
                raise ValueError("clear_threshold must not be below the threshold of a lt/lte rule")
        return self

    @property
    def effective_clear_threshold(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold

    @property
    def no_data_after_seconds(self) -> float:
        return self.no_data_intervals * self.interval_seconds

    def applies_to(self, server_id: uuid.UUID, owner_id: uuid.UUID | None) -> bool:
        """Whether this rule evaluates `server_id` (whose owner is `owner_id`, when known)."""
        if not self.enabled:
            return False
        if self.server_id is not None:
            return self.server_id == server_id
        return owner_id is not None and owner_id == self.owner_id


class AlertEvent(_Payload):
    """A state change of one alert episode; pushed to browsers as the `alert` frame's data."""

    kind: Literal["alert_event"] = "alert_event"
    event_id: uuid.UUID  # = alert_event_id(episode_id, state): the deduplication key
    episode_id: uuid.UUID
    state: AlertState
    rule_id: uuid.UUID
    rule_name: str
    origin: RuleOrigin = "rule"
    owner_id: uuid.UUID | None = None  # None for operator-wide rules deployed as code
    server_id: uuid.UUID
    metric: str  # a RuleMetric, or a code rule's own metric name
    subject: str | None = None
    severity: Severity
    comparison: Comparison
    threshold: float
    value: float | None = None  # the value at the state change (None for no-data)
    started_at: UtcDatetime  # when the condition began to hold: the episode's start
    time: UtcDatetime  # when this state change happened (fired at, or resolved at)
    message: str


_EPISODE_NAMESPACE = uuid.UUID("1d2b7c8e-5f4a-4c39-9d0e-8a7b6c5d4e3f")


def episode_id(
    rule_id: uuid.UUID, server_id: uuid.UUID, subject: str | None, started_at: datetime
) -> uuid.UUID:
    """The stable id of an episode: the same data always yields the same id (live or backtest)."""
    name = f"{rule_id}|{server_id}|{subject or ''}|{started_at.isoformat()}"
    return uuid.uuid5(_EPISODE_NAMESPACE, name)


def alert_event_id(episode: uuid.UUID, state: AlertState) -> uuid.UUID:
    """The id of one state change of an episode (firing or resolved)."""
    return uuid.uuid5(episode, state)


def rule_key(rule_id: uuid.UUID) -> bytes:
    """The ALERT_RULES message key: the rule id's canonical text form."""
    return str(rule_id).encode()


# --- The ChatOps threshold shape ----------------------------------------------------------------

ThresholdMetric = Literal["cpu", "memory", "disk"]
THRESHOLD_DOCS: dict[str, str] = {
    "server_id": "the server it watches",
    "metric_type": "cpu, memory or disk (every mount of the server), each in percent",
    "threshold_value": "the percentage the condition compares with, 0 to 100",
    "comparison": "gt: fires above the value; lt: below it",
}


class ThresholdIn(BaseModel):
    """`POST/PUT /api/v1/alerts/thresholds`: the legacy shape, plus FleetPulse's optional fields."""

    model_config = ConfigDict(extra="ignore")

    server_id: uuid.UUID = Field(description=THRESHOLD_DOCS["server_id"], examples=[EXAMPLE_SERVER_ID])
    metric_type: ThresholdMetric = Field(description=THRESHOLD_DOCS["metric_type"], examples=["cpu"])
    threshold_value: float = Field(
        ge=0, le=100, description=THRESHOLD_DOCS["threshold_value"], examples=[90.0]
    )
    comparison: Literal["gt", "lt"] = Field(
        default="gt", description=THRESHOLD_DOCS["comparison"], examples=["gt"]
    )
    enabled: bool = Field(default=True, description=RULE_DOCS["enabled"], examples=[True])
    # FleetPulse additions, optional on input.
    name: str | None = Field(
        default=None,
        max_length=RULE_NAME_MAX,
        description=f"{RULE_DOCS['name']}; null: made from the metric, comparison and value",
        examples=["CPU high"],
    )
    for_seconds: float = Field(
        default=0.0, ge=0, le=MAX_DURATION_SECONDS, description=RULE_DOCS["for_seconds"], examples=[300.0]
    )
    clear_threshold: float | None = Field(
        default=None, ge=0, le=100, description=RULE_DOCS["clear_threshold"], examples=[80.0]
    )
    clear_for_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description=RULE_DOCS["clear_for_seconds"],
        examples=[60.0],
    )
    severity: Severity = Field(default="warning", description=RULE_DOCS["severity"], examples=["warning"])


class Threshold(BaseModel):
    """A threshold as the API answers it (the rule seen through the legacy shape)."""

    id: uuid.UUID = Field(
        description="the threshold's id (the id of the rule it stands for)", examples=[EXAMPLE_RULE_ID]
    )
    server_id: uuid.UUID = Field(description=THRESHOLD_DOCS["server_id"], examples=[EXAMPLE_SERVER_ID])
    metric_type: ThresholdMetric = Field(description=THRESHOLD_DOCS["metric_type"], examples=["cpu"])
    threshold_value: float = Field(description=THRESHOLD_DOCS["threshold_value"], examples=[90.0])
    comparison: Literal["gt", "lt"] = Field(description=THRESHOLD_DOCS["comparison"], examples=["gt"])
    enabled: bool = Field(description=RULE_DOCS["enabled"], examples=[True])
    name: str = Field(description=RULE_DOCS["name"], examples=["cpu gt 90"])
    for_seconds: float = Field(description=RULE_DOCS["for_seconds"], examples=[0.0])
    clear_threshold: float | None = Field(description=RULE_DOCS["clear_threshold"], examples=[None])
    clear_for_seconds: float = Field(description=RULE_DOCS["clear_for_seconds"], examples=[0.0])
    severity: Severity = Field(description=RULE_DOCS["severity"], examples=["warning"])
    updated_at: datetime = Field(description=RULE_DOCS["updated_at"], examples=[EXAMPLE_TIME])


def rule_from_threshold(
    threshold_id: uuid.UUID, owner_id: uuid.UUID, data: ThresholdIn, updated_at: datetime
) -> AlertRule:
    """The rule a threshold stands for (disk: every mount of the server, in percent).

    Raises pydantic.ValidationError when the hysteresis fields contradict the comparison."""
    return AlertRule(
        rule_id=threshold_id,
        owner_id=owner_id,
        server_id=data.server_id,
        name=data.name or f"{data.metric_type} {data.comparison} {data.threshold_value:g}",
        metric=data.metric_type,
        comparison=data.comparison,
        threshold=data.threshold_value,
        for_seconds=data.for_seconds,
        clear_threshold=data.clear_threshold,
        clear_for_seconds=data.clear_for_seconds,
        severity=data.severity,
        enabled=data.enabled,
        origin="threshold",
        updated_at=updated_at,
    )


def threshold_from_rule(rule: AlertRule) -> Threshold | None:
    """The legacy view of a rule, or None when the rule has no threshold shape."""
    if rule.server_id is None or rule.subject is not None or rule.comparison not in ("gt", "lt"):
        return None
    if rule.metric not in ("cpu", "memory", "disk"):
        return None
    return Threshold(
        id=rule.rule_id,
        server_id=rule.server_id,
        metric_type=rule.metric,
        threshold_value=rule.threshold,
        comparison=rule.comparison,
        enabled=rule.enabled,
        name=rule.name,
        for_seconds=rule.for_seconds,
        clear_threshold=rule.clear_threshold,
        clear_for_seconds=rule.clear_for_seconds,
        severity=rule.severity,
        updated_at=rule.updated_at,
    )


# --- Notification channels and the delivery log ---------------------------------------------------

ChannelKind = Literal["webhook", "slack"]


class NotificationChannel(BaseModel):
    """Where an owner's alerts go. `server_id` / `rule_id` narrow it; None means "all of mine".

    `webhook`: a generic JSON POST of the AlertEvent, signed with HMAC-SHA256 of the body under
    `secret` in the `X-FleetPulse-Signature: sha256=<hex>` header (with `X-FleetPulse-Timestamp`
    and `X-FleetPulse-Event-Id`). `slack`: a Slack-compatible incoming webhook (`{"text": ...}`).
    """

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str = Field(min_length=1, max_length=200)
    kind: ChannelKind
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://")
    secret: str | None = Field(default=None, max_length=512)  # webhook signing key
    server_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    enabled: bool = True


DeliveryStatus = Literal["pending", "delivered", "failed"]


class Delivery(BaseModel):
    """One row of the delivery log: one event to one channel, with its attempts."""

    channel_id: uuid.UUID
    event_id: uuid.UUID
    episode_id: uuid.UUID
    state: AlertState
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


# Module-level adapters: decode raw bytes straight into a model.
ALERT_RULE = TypeAdapter(AlertRule)
ALERT_EVENT = TypeAdapter(AlertEvent)
