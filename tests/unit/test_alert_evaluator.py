"""The engine's in-memory steps: a batch writes each server's state once, a tick fires no-data
only where the partition is caught up, and a sample after the tick sees the tick's firing."""

import uuid
from datetime import UTC, datetime, timedelta

from alerting.registry import RuleRegistry
from schemas import topics
from schemas.alerts import AlertRule
from schemas.canonical import MetricSample
from stream_processors.alerts.engine import ServerStates, evaluate_batch, evaluate_tick
from stream_processors.alerts.health import EngineHealth

OWNER = uuid.uuid4()
SERVER = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = topics.server_key(SERVER)


def sample(seconds: float, cpu: float = 5, server: uuid.UUID = SERVER) -> MetricSample:
    t = T0 + timedelta(seconds=seconds)
    return MetricSample(server_id=server, time=t, received_at=t, cpu_percent=cpu, memory_percent=5)


def rule(**kw: object) -> AlertRule:
    values: dict[str, object] = {
        "rule_id": uuid.uuid4(),
        "owner_id": OWNER,
        "server_id": None,
        "name": "r",
        "metric": "cpu",
        "threshold": 90,
        "updated_at": T0,
    }
    values.update(kw)
    return AlertRule.model_validate(values)


def owners(server_id: uuid.UUID) -> uuid.UUID | None:
    return OWNER if server_id == SERVER else None


def test_a_batch_evaluates_in_order_and_reports_each_changed_server_once() -> None:
    registry = RuleRegistry(10)
    registry.put(rule(for_seconds=10))
    partitions: dict[int, dict[bytes, ServerStates]] = {3: {}}
    other = uuid.uuid4()  # no owner known: no owner-wide rule applies, no state kept
    batch = [(3, KEY, sample(t, 95)) for t in (0, 5, 10, 15)] + [
        (3, topics.server_key(other), sample(0, 95, other))
    ]
    step = evaluate_batch(registry, partitions, batch, owners)
    assert [(e.state, e.started_at, e.time) for e in step.events] == [
        ("firing", T0, T0 + timedelta(seconds=10))
    ]
    assert list(step.changed) == [(3, KEY)] and step.changed[(3, KEY)] is partitions[3][KEY]
    assert topics.server_key(other) not in partitions[3]


def test_a_tick_fires_no_data_only_in_caught_up_partitions_and_the_next_sample_resolves() -> None:
    registry = RuleRegistry(10)
    registry.put(rule(metric="no_data", threshold=0, interval_seconds=10, no_data_intervals=3))
    partitions: dict[int, dict[bytes, ServerStates]] = {0: {}}
    evaluate_batch(registry, partitions, [(0, KEY, sample(0))], owners)
    later = T0 + timedelta(seconds=60)
    assert evaluate_tick(registry, partitions, [], owners, later).events == []  # samples waiting
    fired = evaluate_tick(registry, partitions, [0], owners, later)
    assert [e.state for e in fired.events] == ["firing"] and list(fired.changed) == [(0, KEY)]
    resumed = evaluate_batch(registry, partitions, [(0, KEY, sample(61))], owners)
    assert [e.state for e in resumed.events] == ["resolved"]
    assert resumed.events[0].episode_id == fired.events[0].episode_id


def test_a_deleted_rule_resolves_at_the_next_sample_and_its_state_goes() -> None:
    registry = RuleRegistry(10)
    r = rule()
    registry.put(r)
    partitions: dict[int, dict[bytes, ServerStates]] = {0: {}}
    assert [
        e.state for e in evaluate_batch(registry, partitions, [(0, KEY, sample(0, 95))], owners).events
    ] == ["firing"]
    registry.remove(r.rule_id)
    step = evaluate_batch(registry, partitions, [(0, KEY, sample(10, 95))], owners)
    assert [e.state for e in step.events] == ["resolved"]
    # Nothing left for the server: the changelog gets a tombstone ({} is written as one).
    assert step.changed == {(0, KEY): {}} and KEY not in partitions[0]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_health_is_stalled_only_with_partitions_samples_waiting_and_no_progress() -> None:
    clock = Clock()
    health = EngineHealth(stall_after_seconds=30, clock=clock)
    health.observe(assigned=4, lag=10)
    clock.now += 31
    assert health.stalled and health.as_dict()["stalled"] is True
    health.progressed()  # a batch committed
    assert not health.stalled
    clock.now += 31
    health.observe(assigned=4, lag=0)  # nothing waiting: idle, not stalled
    assert not health.stalled
    clock.now += 31
    health.observe(assigned=0, lag=0)
    assert not health.stalled
    health.observe(assigned=2, lag=5)
    clock.now += 29
    assert not health.stalled
    clock.now += 2
    assert health.stalled
    from prometheus_client import generate_latest

    assert b"fleetpulse_alert_engine_stalled 1.0" in generate_latest(health.registry)
