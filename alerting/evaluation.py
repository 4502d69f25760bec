"""The one evaluation of alert rules, shared by the live engine, rules deployed as code and the backtest.

Pure and synchronous: no faust, no Kafka, no database. State is a JSON-compatible dict per
(server, rule), so the live engine can keep it in memory and snapshot it to its changelog topic
(encoded with orjson) and the backtest in a plain dict; the same samples in the same order always
yield the same events with the same episode ids.

Per subject (a disk mount, an interface, or "" for server-wide metrics) the state machine is:

    ok --breach--> pending --breach held `for_seconds`--> firing
    firing --clear--> clearing --clear held `clear_for_seconds`--> ok (resolved)
    pending --no breach--> ok;  clearing --no clear--> firing

Times are the samples' own times (event time), kept as integer microseconds so episode ids are
exact after a round trip through JSON. No-data rules use the time a sample was received instead
(they are about the agent being silent, and a back-filled sample is not a sign of life at its
own time).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.alerts import (
    AlertEvent,
    AlertRule,
    AlertState,
    Comparison,
    RuleOrigin,
    Severity,
    alert_event_id,
    episode_id,
)
from schemas.canonical import MetricSample

State = dict[str, Any]
"""A JSON-compatible dict: {"subjects": {...}, "memory": {...}, "last_time": us, ...}."""

Signal = Callable[[MetricSample, dict[str, Any]], Mapping[str, float]]
"""Derives values from a sample, per subject ("" when the metric is server-wide). The dict is the
signal's own memory (JSON-compatible, kept in the state), for rates and trends."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CMP: dict[Comparison, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
# The clear condition is the far side of the clear threshold: for `gt 90, clear 85` a value
# must fall to 85 or below, so anything between 85 and 90 keeps the alert as it is.
_CLEAR: dict[Comparison, Callable[[float, float], bool]] = {
    "gt": operator.le,
    "gte": operator.lt,
    "lt": operator.ge,
    "lte": operator.gt,
}


def to_us(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What the evaluator needs of a rule, whether it came as data (AlertRule) or as code."""

    rule_id: uuid.UUID
    name: str
    metric: str
    signal: Signal | None  # None: a no-data rule
    comparison: Comparison = "gt"
    threshold: float = 0.0
    clear_threshold: float | None = None
    for_seconds: float = 0.0
    clear_for_seconds: float = 0.0
    severity: Severity = "warning"
    origin: RuleOrigin = "rule"
    owner_id: uuid.UUID | None = None
    no_data_after_seconds: float = 30.0
    version: str = ""  # changes when the rule changes: state of an older version is reset
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Derived once, for the per-sample path (not compared: they follow from the fields above).
    key: str = field(init=False, compare=False, repr=False)
    for_us: float = field(init=False, compare=False, repr=False)
    clear_for_us: float = field(init=False, compare=False, repr=False)
    _breach: Callable[[float, float], bool] = field(init=False, compare=False, repr=False)
    _clear: Callable[[float, float], bool] = field(init=False, compare=False, repr=False)
    _clear_limit: float = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        derived = {
            "key": str(self.rule_id),
            "for_us": self.for_seconds * 1e6,
            "clear_for_us": self.clear_for_seconds * 1e6,
            "_breach": _CMP[self.comparison],
            "_clear": _CLEAR[self.comparison],
            "_clear_limit": self.threshold if self.clear_threshold is None else self.clear_threshold,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def is_no_data(self) -> bool:
        return self.signal is None

    def breach(self, value: float) -> bool:
        return self._breach(value, self.threshold)

    def clear(self, value: float) -> bool:
        return self._clear(value, self._clear_limit)


# --- Built-in signals ----------------------------------------------------------------------------


def _cpu(sample: MetricSample, memory: dict[str, Any]) -> Mapping[str, float]:
    return {"": sample.cpu_percent}


def _memory(sample: MetricSample, memory: dict[str, Any]) -> Mapping[str, float]:
    return {"": sample.memory_percent}


def _load(attr: str) -> Signal:
    def signal(sample: MetricSample, memory: dict[str, Any]) -> Mapping[str, float]:
        value = getattr(sample, attr)
        return {} if value is None else {"": float(value)}

    return signal


def _disk(subject: str | None) -> Signal:
    def signal(sample: MetricSample, memory: dict[str, Any]) -> Mapping[str, float]:
        return {d.mount: d.percent for d in sample.disks if subject is None or d.mount == subject}

    return signal


def _net(direction: str, subject: str | None) -> Signal:
    counter = "bytes_recv" if direction == "rx" else "bytes_sent"

    def signal(sample: MetricSample, memory: dict[str, Any]) -> Mapping[str, float]:
        now = to_us(sample.time)
        rates: dict[str, float] = {}
        for iface in sample.interfaces:
            if subject is not None and iface.interface != subject:
                continue
            value = getattr(iface, counter)
            previous = memory.get(iface.interface)
            memory[iface.interface] = [now, value]
            if previous is None:
                continue
            elapsed = (now - previous[0]) / 1e6
            # A counter that went down was reset (reboot): that interval has no rate.
            if elapsed > 0 and value >= previous[1]:
                rates[iface.interface] = (value - previous[1]) / elapsed
        return rates

    return signal


def signal_for(rule: AlertRule) -> Signal | None:
    match rule.metric:
        case "cpu":
            return _cpu
        case "memory":
            return _memory
        case "load1" | "load5" | "load15":
            return _load(rule.metric)
        case "disk":
            return _disk(rule.subject)
        case "net_rx":
            return _net("rx", rule.subject)
        case "net_tx":
            return _net("tx", rule.subject)
        case "no_data":
            return None


def spec_from_rule(rule: AlertRule) -> RuleSpec:
    return RuleSpec(
        rule_id=rule.rule_id,
        name=rule.name,
        metric=rule.metric,
        signal=signal_for(rule),
        comparison=rule.comparison,
        threshold=rule.threshold,
        clear_threshold=rule.clear_threshold,
        for_seconds=rule.for_seconds,
        clear_for_seconds=rule.clear_for_seconds,
        severity=rule.severity,
        origin=rule.origin,
        owner_id=rule.owner_id,
        no_data_after_seconds=rule.no_data_after_seconds,
        version=rule.updated_at.isoformat(),
    )


# --- The state machine ---------------------------------------------------------------------------


def new_state() -> State:
    return {"subjects": {}, "memory": {}, "last_time": None, "last_received": None, "version": None}


def _event(
    spec: RuleSpec,
    server_id: uuid.UUID,
    subject: str,
    state: AlertState,
    started_us: int,
    at_us: int,
    value: float | None,
    owner_id: uuid.UUID | None,
) -> AlertEvent:
    started_at = from_us(started_us)
    episode = episode_id(spec.rule_id, server_id, subject or None, started_at)
    where = f" on {subject}" if subject else ""
    if spec.is_no_data:
        message = (
            f"{spec.name}: no data for {spec.no_data_after_seconds:g}s"
            if state == "firing"
            else f"{spec.name}: data is back"
        )
    else:
        shown = "n/a" if value is None else f"{value:.4g}"
        verb = "firing" if state == "firing" else "resolved"
        message = (
            f"{spec.name}{where}: {verb}, {spec.metric} = {shown} ({spec.comparison} {spec.threshold:g})"
        )
    return AlertEvent(
        event_id=alert_event_id(episode, state),
        episode_id=episode,
        state=state,
        rule_id=spec.rule_id,
        rule_name=spec.name,
        origin=spec.origin,
        owner_id=owner_id if owner_id is not None else spec.owner_id,
        server_id=server_id,
        metric=spec.metric,
        subject=subject or None,
        severity=spec.severity,
        comparison=spec.comparison,
        threshold=spec.threshold,
        value=value,
        started_at=started_at,
        time=from_us(at_us),
        message=message,
    )


def _reset_if_changed(spec: RuleSpec, state: State) -> None:
    # A changed rule keeps open episodes (so a threshold edit does not re-notify) but restarts
    # pending timers: the new condition must hold for the new duration on its own.
    if state.get("version") == spec.version:
        return
    state["version"] = spec.version
    for sub in state["subjects"].values():
        if sub["phase"] == "pending":
            sub["phase"] = "ok"
        elif sub["phase"] == "clearing":
            sub["phase"] = "firing"


def evaluate_sample(
    spec: RuleSpec,
    sample: MetricSample,
    state: State,
    owner_id: uuid.UUID | None = None,
    now: int | None = None,
) -> list[AlertEvent]:
    """Advance `state` (in place) with one sample; return the episode changes it causes.

    `now`: the sample's time in microseconds, when the caller computed it already."""
    if state.get("version") != spec.version:
        _reset_if_changed(spec, state)
    signal = spec.signal
    if signal is None:
        return _evaluate_no_data_sample(spec, sample, state, owner_id)
    if now is None:
        now = to_us(sample.time)
    last = state["last_time"]
    if last is not None and now <= last:
        return []  # older than what this state has seen: a duplicate or a late replay
    state["last_time"] = now
    values = signal(sample, state["memory"])
    events: list[AlertEvent] = []
    subjects = state["subjects"]
    for subject, value in values.items():
        sub = subjects.get(subject)
        if sub is None:
            sub = subjects[subject] = {"phase": "ok", "since": None, "started": None}
        elif sub["phase"] == "ok" and not spec._breach(value, spec.threshold):
            continue  # the common case: nothing to do
        event = _advance(spec, sample.server_id, subject, sub, now, value, owner_id)
        if event is not None:
            events.append(event)
    return events


def _advance(
    spec: RuleSpec,
    server_id: uuid.UUID,
    subject: str,
    sub: dict[str, Any],
    now: int,
    value: float,
    owner_id: uuid.UUID | None,
) -> AlertEvent | None:
    phase = sub["phase"]
    if phase in ("ok", "pending"):
        if not spec.breach(value):
            sub["phase"], sub["since"] = "ok", None
            return None
        if phase == "ok":
            sub["phase"], sub["since"] = "pending", now
        if now - sub["since"] >= spec.for_us:
            sub["phase"], sub["started"] = "firing", sub["since"]
            sub["since"] = None
            return _event(spec, server_id, subject, "firing", sub["started"], now, value, owner_id)
        return None
    # firing or clearing
    if not spec.clear(value):
        sub["phase"], sub["since"] = "firing", None
        return None
    if phase == "firing":
        sub["phase"], sub["since"] = "clearing", now
    if now - sub["since"] >= spec.clear_for_us:
        started = sub["started"]
        sub["phase"], sub["since"], sub["started"] = "ok", None, None
        return _event(spec, server_id, subject, "resolved", started, now, value, owner_id)
    return None


def _evaluate_no_data_sample(
    spec: RuleSpec, sample: MetricSample, state: State, owner_id: uuid.UUID | None
) -> list[AlertEvent]:
    received = to_us(sample.received_at)
    last = state["last_received"]
    if last is not None and received <= last:
        return []
    events = _check_silence(spec, sample.server_id, state, received, owner_id)
    sub = state["subjects"].get("")
    if sub is not None and sub["phase"] == "firing":
        # Data is back: the silence ends at this sample's arrival.
        events.append(
            _event(spec, sample.server_id, "", "resolved", sub["started"], received, None, owner_id)
        )
        sub["phase"], sub["started"] = "ok", None
    state["last_received"] = received
    return events


def _check_silence(
    spec: RuleSpec, server_id: uuid.UUID, state: State, now: int, owner_id: uuid.UUID | None
) -> list[AlertEvent]:
    last = state["last_received"]
    if last is None:
        return []  # a server that never sent anything is not "silent" yet
    sub = state["subjects"].setdefault("", {"phase": "ok", "since": None, "started": None})
    after = int(spec.no_data_after_seconds * 1e6)
    if sub["phase"] != "ok" or now - last < after:
        return []
    # The episode starts at the last sign of life and fires when the silence reached the limit:
    # both derive from the data, not from when a timer happened to run, so replays agree.
    sub["phase"], sub["started"] = "firing", last
    return [_event(spec, server_id, "", "firing", last, last + after, None, owner_id)]


def evaluate_silence(
    spec: RuleSpec,
    server_id: uuid.UUID,
    now: datetime,
    state: State,
    owner_id: uuid.UUID | None = None,
) -> list[AlertEvent]:
    """A clock tick for a no-data rule: fire if the server has been silent long enough by `now`."""
    if not spec.is_no_data:
        return []
    _reset_if_changed(spec, state)
    return _check_silence(spec, server_id, state, to_us(now), owner_id)


def open_episodes(state: State) -> list[tuple[str, int]]:
    """(subject, started_us) of every firing episode in `state`."""
    return [
        (subject, sub["started"])
        for subject, sub in state["subjects"].items()
        if sub["phase"] in ("firing", "clearing") and sub["started"] is not None
    ]


def close_removed(
    spec: RuleSpec, server_id: uuid.UUID, state: State, at: datetime, owner_id: uuid.UUID | None = None
) -> list[AlertEvent]:
    """Resolve every open episode of a rule that was deleted or disabled."""
    events = [
        _event(spec, server_id, subject, "resolved", started, to_us(at), None, owner_id)
        for subject, started in open_episodes(state)
    ]
    state["subjects"].clear()
    return events


# --- One server, every rule ----------------------------------------------------------------------

Retired = Callable[[uuid.UUID], "RuleSpec | None"]
"""The last version of a rule that was deleted or disabled (None: unknown), to resolve its episodes."""


def evaluate_server(
    specs: Iterable[RuleSpec],
    states: dict[str, State],
    sample: MetricSample,
    owner_id: uuid.UUID | None,
    retired: Retired,
) -> list[AlertEvent]:
    """Evaluate one sample against every rule of its server (`states`: rule id -> state, updated
    in place); the state of rules gone since is dropped, their open episodes resolved."""
    events: list[AlertEvent] = []
    active = set()
    now = to_us(sample.time)
    for spec in specs:
        key = spec.key
        active.add(key)
        state = states.get(key)
        if state is None:
            state = states[key] = new_state()
        found = evaluate_sample(spec, sample, state, owner_id, now)
        if found:
            events.extend(found)
    if len(states) > len(active):
        for key in [k for k in states if k not in active]:
            gone = retired(uuid.UUID(key))
            if gone is not None:
                # A deleted or disabled rule: its open episodes end now.
                events.extend(close_removed(gone, sample.server_id, states[key], sample.time, owner_id))
            del states[key]
    return events
