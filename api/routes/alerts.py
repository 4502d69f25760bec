"""Alerts: rules CRUD (the alert engine's model, published to the compacted rules topic on every
change), the ChatOps thresholds mapped onto rules, the episodes list, acknowledge and resolve,
and the backtest of a rule over stored history.

A rule belongs to the user who made it. A rule on one server needs the operator role there; a
rule without a server covers every server its owner owns. Each change is written and published
in one transaction: the rule is committed only once the broker has it, so the database and the
topic never disagree after a failed publish (a 503 the client may retry).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from alerting.replay import Episode, backtest
from schemas.alerts import (
    MAX_DURATION_SECONDS,
    MAX_INTERVAL_SECONDS,
    MAX_NO_DATA_INTERVALS,
    RULE_DOCS,
    RULE_NAME_MAX,
    SUBJECT_MAX,
    AlertRule,
    Comparison,
    RuleMetric,
    Severity,
    Threshold,
    ThresholdIn,
    rule_from_threshold,
    threshold_from_rule,
)

from ..db import alerts as alerts_db
from ..db import backtest as backtest_db
from ..db import servers as servers_db
from ..db.pool import Pool, connection, transaction
from ..deps import CurrentUser, PoolDep, ResourcesDep, UserDep, require_role
from ..errors import NotFound, RangeTooLarge, Unprocessable
from ..models import EXAMPLE_EPISODE, EXAMPLE_RULE, EXAMPLE_SERVER, EXAMPLE_TIME, ApiTime, Page
from ..openapi import problems
from ..pagination import Keyset, LegacyPagerDep, PagerDep, RemovedBefore, legacy_page, negotiated
from ..state import Resources

router = APIRouter(prefix="/alerts", tags=["alerts"])


class RuleIn(BaseModel):
    """An alert rule to create or replace (the owner is the caller)."""

    model_config = ConfigDict(extra="forbid")

    server_id: uuid.UUID | None = Field(
        default=None,
        description=f"{RULE_DOCS['server_id']} (the operator role there is needed)",
        examples=[EXAMPLE_SERVER],
    )
    name: str = Field(
        min_length=1, max_length=RULE_NAME_MAX, description=RULE_DOCS["name"], examples=["CPU high"]
    )
    metric: RuleMetric = Field(description=RULE_DOCS["metric"], examples=["cpu"])
    subject: str | None = Field(
        default=None, max_length=SUBJECT_MAX, description=RULE_DOCS["subject"], examples=[None]
    )
    comparison: Comparison = Field(default="gt", description=RULE_DOCS["comparison"], examples=["gt"])
    threshold: float = Field(
        default=0.0, allow_inf_nan=False, description=RULE_DOCS["threshold"], examples=[90.0]
    )
    for_seconds: float = Field(
        default=0.0, ge=0, le=MAX_DURATION_SECONDS, description=RULE_DOCS["for_seconds"], examples=[300.0]
    )
    clear_threshold: float | None = Field(
        default=None, allow_inf_nan=False, description=RULE_DOCS["clear_threshold"], examples=[80.0]
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


class RuleOut(BaseModel):
    """A stored alert rule."""

    id: uuid.UUID = Field(description="the rule's id (the same as `rule.rule_id`)", examples=[EXAMPLE_RULE])
    rule: AlertRule = Field(description="the rule as the alert engine evaluates it")


_SEVERITY = "how urgent: info, warning or critical"


class AlertOut(BaseModel):
    """One alert episode: a rule's condition on one server (and subject), from firing to resolved."""

    episode_id: uuid.UUID = Field(
        description="the episode's id, derived from the rule, server, subject and start (a replay gives "
        "the same)",
        examples=[EXAMPLE_EPISODE],
    )
    rule_id: uuid.UUID = Field(description="the rule that fired", examples=[EXAMPLE_RULE])
    rule_name: str = Field(description="that rule's name when it fired", examples=["CPU high"])
    origin: str = Field(description=RULE_DOCS["origin"], examples=["rule"])
    server_id: uuid.UUID = Field(description="the server", examples=[EXAMPLE_SERVER])
    metric: str = Field(
        description="the rule's metric (a code rule's own metric name for origin code)", examples=["cpu"]
    )
    subject: str | None = Field(
        description="the mount or interface of a disk or network episode; null for the others",
        examples=[None],
    )
    severity: str = Field(description=_SEVERITY, examples=["critical"])
    comparison: str = Field(description=RULE_DOCS["comparison"], examples=["gt"])
    threshold: float = Field(description="the rule's threshold when it fired", examples=[90.0])
    state: Literal["firing", "resolved"] = Field(
        description="firing until the clear condition held (or someone resolved it), then resolved",
        examples=["firing"],
    )
    started_at: datetime = Field(
        description="when the condition began to hold (UTC): the episode's start",
        examples=["2026-01-01T11:55:00Z"],
    )
    fired_at: datetime | None = Field(
        description="when it fired (UTC): `started_at` plus the rule's `for_seconds`; null: not recorded",
        examples=[EXAMPLE_TIME],
    )
    fired_value: float | None = Field(
        description="the value that fired it, in the metric's unit; null for no_data", examples=[93.5]
    )
    resolved_at: datetime | None = Field(
        description="when it resolved (UTC); null while firing", examples=[None]
    )
    resolved_value: float | None = Field(
        description="the value that resolved it; null while firing, for no_data, or resolved by hand",
        examples=[None],
    )
    message: str = Field(
        description="a one-line summary for people", examples=["CPU high: firing, cpu = 93.5 (gt 90)"]
    )
    acknowledged_at: datetime | None = Field(
        description="when someone acknowledged it (UTC); null: nobody did", examples=[None]
    )
    acknowledged_by: uuid.UUID | None = Field(
        description="who acknowledged it; null: nobody", examples=[None]
    )
    resolved_by: uuid.UUID | None = Field(
        description="who resolved it by hand; null: nobody (the engine resolved it, or it fires)",
        examples=[None],
    )


class RulePage(Page[RuleOut]):
    """A page of alert rules."""


class ThresholdPage(Page[Threshold]):
    """A page of thresholds."""


class AlertPage(Page[AlertOut]):
    """A page of alert episodes."""


RULES = Keyset("rules", (datetime, uuid.UUID))
THRESHOLDS = Keyset("thresholds", (datetime, uuid.UUID))
ALERTS = Keyset("alerts", (datetime, uuid.UUID))
_THRESHOLD_LIST = TypeAdapter(list[Threshold])


class BacktestIn(BaseModel):
    """A rule replayed over stored history: what it would have fired."""

    model_config = ConfigDict(extra="forbid")

    start: ApiTime = Field(
        description="the replay's start, inclusive, with a UTC offset", examples=["2026-01-01T00:00:00Z"]
    )
    end: ApiTime = Field(description="the replay's end, exclusive, after `start`", examples=[EXAMPLE_TIME])
    rule: RuleIn | None = Field(
        default=None,
        description="the unsaved rule to replay (`POST /alerts/backtest`); left out on "
        "`/alerts/rules/{rule_id}/backtest`, which replays the stored rule",
    )


class BacktestOut(BaseModel):
    """What the rule would have fired over the range."""

    rule: AlertRule = Field(description="the rule replayed")
    start: datetime = Field(description="the range's start (UTC)", examples=["2026-01-01T00:00:00Z"])
    end: datetime = Field(description="the range's end (UTC)", examples=[EXAMPLE_TIME])
    servers: list[uuid.UUID] = Field(
        description="the servers replayed (the rule's server, or its owner's servers, at most the API's "
        "`backtest_max_servers` setting)",
        examples=[[EXAMPLE_SERVER]],
    )
    episodes: list[Episode] = Field(description="the episodes it would have produced, in time order")


def _build(rule_id: uuid.UUID, owner_id: uuid.UUID, body: RuleIn, origin: str = "rule") -> AlertRule:
    try:
        return AlertRule(
            rule_id=rule_id,
            owner_id=owner_id,
            origin=origin,
            updated_at=datetime.now(UTC),
            **body.model_dump(),
        )
    except ValidationError as exc:
        raise Unprocessable.of(exc.errors(), prefix=("body",)) from exc


async def _check_scope(resources: Resources, user: CurrentUser, server_id: uuid.UUID | None) -> None:
    if server_id is not None:
        await require_role(resources.pool, user, server_id, "operator")


async def _save(resources: Resources, rule: AlertRule, *, new: bool) -> None:
    definition: dict[str, Any] = rule.model_dump(mode="json")
    async with transaction(resources.pool) as conn:
        if new:
            await alerts_db.insert_rule(
                conn, rule.rule_id, rule.owner_id, rule.server_id, rule.origin, rule.enabled, definition
            )
        else:
            await alerts_db.update_rule(conn, rule.rule_id, rule.server_id, rule.enabled, definition)
        # Published before the commit: a refused publish rolls the change back.
        await resources.producer.publish_rule(rule.rule_id, rule.to_bytes())


async def _owned_rule(pool: Pool, user: CurrentUser, rule_id: uuid.UUID, origin: str | None) -> AlertRule:
    async with connection(pool) as conn:
        row = await alerts_db.get_rule(conn, user.id, rule_id)
    if row is None or (origin is not None and row["origin"] != origin):
        raise NotFound("rule not found")
    return AlertRule.model_validate(row["definition"])


async def _delete(resources: Resources, rule_id: uuid.UUID) -> None:
    async with transaction(resources.pool) as conn:
        await alerts_db.delete_rule(conn, rule_id)
        await resources.producer.publish_rule(rule_id, None)  # the tombstone deletes it downstream


# --- rules ---------------------------------------------------------------------------------------


@router.post("/rules", status_code=status.HTTP_201_CREATED, openapi_extra=problems("forbidden", "not-found"))
async def create_rule(body: RuleIn, request: Request, user: UserDep, resources: ResourcesDep) -> RuleOut:
    request.state.audit_server_id = body.server_id
    await _check_scope(resources, user, body.server_id)
    rule = _build(uuid.uuid4(), user.id, body)
    await _save(resources, rule, new=True)
    return RuleOut(id=rule.rule_id, rule=rule)


@router.get("/rules")
async def list_rules(
    user: UserDep, pool: PoolDep, pager: PagerDep, server_id: Annotated[uuid.UUID | None, Query()] = None
) -> RulePage:
    """The caller's rules (thresholds included), optionally those of one server, oldest first."""
    async with connection(pool) as conn:
        rows = await alerts_db.list_rules(
            conn, user.id, None, server_id, after=pager.after(RULES), limit=pager.fetch
        )
    page, next_cursor = pager.cut(RULES, rows, lambda row: (row["created_at"], row["id"]))
    rules = [AlertRule.model_validate(row["definition"]) for row in page]
    return RulePage(items=[RuleOut(id=rule.rule_id, rule=rule) for rule in rules], next_cursor=next_cursor)


@router.get("/rules/{rule_id}")
async def get_rule(rule_id: uuid.UUID, user: UserDep, pool: PoolDep) -> RuleOut:
    rule = await _owned_rule(pool, user, rule_id, None)
    return RuleOut(id=rule.rule_id, rule=rule)


@router.put("/rules/{rule_id}", openapi_extra=problems("forbidden"))
async def update_rule(
    rule_id: uuid.UUID, body: RuleIn, request: Request, user: UserDep, resources: ResourcesDep
) -> RuleOut:
    old = await _owned_rule(resources.pool, user, rule_id, None)
    await _check_scope(resources, user, body.server_id)
    rule = _build(rule_id, user.id, body, origin=old.origin)
    if body.server_id is not None:
        request.state.audit_server_id = body.server_id
    await _save(resources, rule, new=False)
    return RuleOut(id=rule.rule_id, rule=rule)


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: uuid.UUID, request: Request, user: UserDep, resources: ResourcesDep) -> None:
    old = await _owned_rule(resources.pool, user, rule_id, None)
    request.state.audit_server_id = old.server_id
    await _delete(resources, rule_id)


# --- ChatOps thresholds --------------------------------------------------------------------------


def _threshold(rule: AlertRule) -> Threshold:
    threshold = threshold_from_rule(rule)
    assert threshold is not None  # stored with origin 'threshold' from a ThresholdIn
    return threshold


def _threshold_rule(threshold_id: uuid.UUID, user: CurrentUser, body: ThresholdIn) -> AlertRule:
    try:
        return rule_from_threshold(threshold_id, user.id, body, datetime.now(UTC))
    except ValidationError as exc:
        raise Unprocessable.of(exc.errors(), prefix=("body",)) from exc


@router.get("/thresholds", response_model=list[Threshold], openapi_extra=legacy_page(ThresholdPage))
async def list_thresholds(
    user: UserDep,
    pool: PoolDep,
    pager: LegacyPagerDep,
    server_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    """The caller's thresholds, oldest first. A bare array, as the legacy spec has it; `Accept:
    application/vnd.fleetpulse.page+json` answers the page (`{items, next_cursor}`) instead."""
    async with connection(pool) as conn:
        rows = await alerts_db.list_rules(
            conn, user.id, "threshold", server_id, after=pager.after(THRESHOLDS), limit=pager.fetch
        )
    page, next_cursor = pager.cut(THRESHOLDS, rows, lambda row: (row["created_at"], row["id"]))
    items = [_threshold(AlertRule.model_validate(row["definition"])) for row in page]
    return negotiated(pager, ThresholdPage(items=items, next_cursor=next_cursor), _THRESHOLD_LIST)


@router.post(
    "/thresholds", status_code=status.HTTP_201_CREATED, openapi_extra=problems("forbidden", "not-found")
)
async def create_threshold(
    body: ThresholdIn, request: Request, user: UserDep, resources: ResourcesDep
) -> Threshold:
    request.state.audit_server_id = body.server_id
    await _check_scope(resources, user, body.server_id)
    rule = _threshold_rule(uuid.uuid4(), user, body)
    await _save(resources, rule, new=True)
    return _threshold(rule)


@router.put("/thresholds/{threshold_id}", openapi_extra=problems("forbidden"))
async def update_threshold(
    threshold_id: uuid.UUID, body: ThresholdIn, request: Request, user: UserDep, resources: ResourcesDep
) -> Threshold:
    request.state.audit_server_id = body.server_id
    await _owned_rule(resources.pool, user, threshold_id, "threshold")
    await _check_scope(resources, user, body.server_id)
    rule = _threshold_rule(threshold_id, user, body)
    await _save(resources, rule, new=False)
    return _threshold(rule)


@router.delete("/thresholds/{threshold_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_threshold(
    threshold_id: uuid.UUID, request: Request, user: UserDep, resources: ResourcesDep
) -> None:
    old = await _owned_rule(resources.pool, user, threshold_id, "threshold")
    request.state.audit_server_id = old.server_id
    await _delete(resources, threshold_id)


# --- episodes ------------------------------------------------------------------------------------


@router.get("")
async def list_alerts(
    user: UserDep,
    pool: PoolDep,
    server_id: Annotated[uuid.UUID | None, Query()] = None,
    state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    severity: Annotated[Severity | None, Query()] = None,
    start: Annotated[ApiTime | None, Query(description="episodes that started at or after")] = None,
    end: Annotated[ApiTime | None, Query(description="episodes that started before")] = None,
    *,
    pager: PagerDep,
    _before: RemovedBefore,
) -> AlertPage:
    """Alert episodes on the servers the caller may see, newest first."""
    async with connection(pool) as conn:
        rows = await alerts_db.list_alerts(
            conn,
            user.id,
            server_id=server_id,
            state=state,
            severity=severity,
            start=start,
            end=end,
            after=pager.after(ALERTS),
            limit=pager.fetch,
        )
    page, next_cursor = pager.cut(ALERTS, rows, lambda row: (row["started_at"], row["episode_id"]))
    return AlertPage(items=[AlertOut(**dict(row)) for row in page], next_cursor=next_cursor)


async def _alert_for(pool: Pool, user: CurrentUser, episode_id: uuid.UUID, needed: servers_db.Role) -> None:
    async with connection(pool) as conn:
        row = await alerts_db.get_alert(conn, episode_id)
        role = await servers_db.server_role(conn, user.id, row["server_id"]) if row else None
    if row is None or role is None:
        raise NotFound("alert not found")
    await require_role(pool, user, row["server_id"], needed)


@router.post("/{episode_id}/acknowledge", openapi_extra=problems("forbidden"))
async def acknowledge(episode_id: uuid.UUID, request: Request, user: UserDep, pool: PoolDep) -> AlertOut:
    """Mark the episode as seen (operators); repeating it keeps the first acknowledgement."""
    await _alert_for(pool, user, episode_id, "operator")
    async with connection(pool) as conn:
        await alerts_db.acknowledge_alert(conn, episode_id, user.id)
        row = await alerts_db.get_alert(conn, episode_id)
    assert row is not None
    request.state.audit_server_id = row["server_id"]
    return AlertOut(**dict(row))


@router.post("/{episode_id}/resolve", openapi_extra=problems("forbidden"))
async def resolve(episode_id: uuid.UUID, request: Request, user: UserDep, pool: PoolDep) -> AlertOut:
    """Close the episode by hand (operators). The engine resolves it again on its own when the
    condition clears; that changes nothing here (a resolution is never undone)."""
    await _alert_for(pool, user, episode_id, "operator")
    async with connection(pool) as conn:
        await alerts_db.resolve_alert(conn, episode_id, user.id)
        row = await alerts_db.get_alert(conn, episode_id)
    assert row is not None
    request.state.audit_server_id = row["server_id"]
    return AlertOut(**dict(row))


# --- backtest ------------------------------------------------------------------------------------


async def _backtest(
    resources: Resources, user: CurrentUser, rule: AlertRule, start: datetime, end: datetime
) -> BacktestOut:
    if end <= start:
        raise Unprocessable("start must be before end", loc=("body", "start"))
    async with connection(resources.pool) as conn:
        if rule.server_id is not None:
            servers = [rule.server_id]
        else:
            servers = await alerts_db.owned_server_ids(conn, user.id, resources.settings.backtest_max_servers)
        limit = resources.settings.backtest_max_samples
        count = await backtest_db.count_samples(conn, servers, start, end)
        if count > limit:
            raise RangeTooLarge(
                f"the range holds {count} samples, more than the limit of {limit}: narrow the range"
            )
        samples = await backtest_db.load_samples(conn, servers, start, end)
    # Pure CPU work, off the connection: the replay is the live engine's own evaluation.
    found = backtest(rule, samples, end)
    return BacktestOut(rule=rule, start=start, end=end, servers=servers, episodes=found)


@router.post("/backtest", openapi_extra=problems("forbidden", "not-found", "range-too-large"))
async def backtest_new_rule(body: BacktestIn, user: UserDep, resources: ResourcesDep) -> BacktestOut:
    """What an unsaved rule would have fired over stored history (nothing is saved or sent)."""
    if body.rule is None:
        raise Unprocessable("rule: required here", loc=("body", "rule"), error_type="missing")
    await _check_scope(resources, user, body.rule.server_id)
    rule = _build(uuid.uuid4(), user.id, body.rule)
    return await _backtest(resources, user, rule, body.start, body.end)


@router.post("/rules/{rule_id}/backtest", openapi_extra=problems("forbidden", "range-too-large"))
async def backtest_rule(
    rule_id: uuid.UUID, body: BacktestIn, user: UserDep, resources: ResourcesDep
) -> BacktestOut:
    """What a saved rule would have fired over stored history, with the episode ids the live
    engine gives the same data."""
    rule = await _owned_rule(resources.pool, user, rule_id, None)
    await _check_scope(resources, user, rule.server_id)
    return await _backtest(resources, user, rule, body.start, body.end)
