import uuid
from datetime import UTC, datetime, timedelta

import orjson

from alerting.code import load
from alerting.evaluation import (
    close_removed,
    evaluate_sample,
    evaluate_silence,
    new_state,
    spec_from_rule,
)
from alerting.replay import episodes, replay
from schemas.alerts import AlertRule
from schemas.canonical import DiskSample, InterfaceSample, MetricSample

OWNER = uuid.UUID("00000000-0000-4000-8000-00000000000a")
SERVER = uuid.UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule(**kw) -> AlertRule:
    base = {
        "rule_id": uuid.UUID("00000000-0000-4000-8000-0000000000f1"),
        "owner_id": OWNER,
        "server_id": SERVER,
        "name": "cpu high",
        "metric": "cpu",
        "comparison": "gt",
        "threshold": 90,
        "updated_at": T0,
    }
    base.update(kw)
    return AlertRule(**base)


def sample(i: float, cpu: float = 10, step: float = 10, **kw) -> MetricSample:
    t = T0 + timedelta(seconds=i * step)
    return MetricSample(
        server_id=SERVER,
        time=t,
        received_at=kw.pop("received_at", t),
        cpu_percent=cpu,
        memory_percent=1,
        **kw,
    )


def run(spec, values, state=None):
    state = state if state is not None else new_state()
    out = []
    for i, v in enumerate(values):
        out.extend(evaluate_sample(spec, sample(i, v), state))
        # Every step goes through JSON, as in the changelog-backed table.
        state = orjson.loads(orjson.dumps(state))
    return out, state


def test_for_delays_firing_until_the_condition_held_long_enough() -> None:
    spec = spec_from_rule(rule(for_seconds=30))
    events, _ = run(spec, [95, 95, 95])  # t = 0, 10, 20: held 20 s only
    assert events == []
    events, _ = run(spec, [95, 95, 95, 95])  # t = 30: held 30 s
    assert [(e.state, e.time, e.started_at) for e in events] == [("firing", T0 + timedelta(seconds=30), T0)]


def test_a_dip_before_for_elapses_restarts_the_pending_timer() -> None:
    spec = spec_from_rule(rule(for_seconds=20))
    events, _ = run(spec, [95, 95, 50, 95, 95])
    assert events == []


def test_hysteresis_stops_flapping_at_the_threshold() -> None:
    hovering = [95, 89.5, 90.5, 89.9, 91, 88, 92, 86.0, 95, 84, 84, 84]
    plain, _ = run(spec_from_rule(rule()), hovering)
    assert len(plain) > 6  # without hysteresis: fires and resolves over and over
    spec = spec_from_rule(rule(clear_threshold=85, clear_for_seconds=20))
    events, _ = run(spec, hovering)
    assert [e.state for e in events] == ["firing", "resolved"]
    assert events[1].time == T0 + timedelta(seconds=110)  # 84 held from t=90 to t=110
    assert events[0].episode_id == events[1].episode_id


def test_same_data_gives_same_episode_ids_and_events_carry_rule_fields() -> None:
    spec = spec_from_rule(rule(severity="critical"))
    a, _ = run(spec, [95, 50])
    b, _ = run(spec, [95, 50])
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert a[0].severity == "critical" and a[0].value == 95 and a[0].owner_id == OWNER


def test_duplicate_and_older_samples_are_ignored() -> None:
    spec = spec_from_rule(rule())
    state = new_state()
    assert len(evaluate_sample(spec, sample(1, 95), state)) == 1
    assert evaluate_sample(spec, sample(1, 95), state) == []
    assert evaluate_sample(spec, sample(0, 10), state) == []


def test_no_data_fires_after_n_intervals_and_resolves_when_data_returns() -> None:
    spec = spec_from_rule(rule(metric="no_data", threshold=0, interval_seconds=10, no_data_intervals=3))
    state = new_state()
    assert evaluate_sample(spec, sample(0), state) == []
    assert evaluate_silence(spec, SERVER, T0 + timedelta(seconds=29), state) == []
    fired = evaluate_silence(spec, SERVER, T0 + timedelta(seconds=31), state)
    assert [(e.state, e.started_at, e.time) for e in fired] == [("firing", T0, T0 + timedelta(seconds=30))]
    assert evaluate_silence(spec, SERVER, T0 + timedelta(seconds=60), state) == []  # once only
    back = evaluate_sample(spec, sample(10), state)
    assert [(e.state, e.time, e.episode_id) for e in back] == [
        ("resolved", T0 + timedelta(seconds=100), fired[0].episode_id)
    ]


def test_no_data_missed_by_the_clock_is_caught_when_data_returns() -> None:
    spec = spec_from_rule(rule(metric="no_data", threshold=0, interval_seconds=10, no_data_intervals=3))
    state = new_state()
    evaluate_sample(spec, sample(0), state)
    events = evaluate_sample(spec, sample(5), state)  # 50 s gap, no tick in between
    assert [e.state for e in events] == ["firing", "resolved"]


def test_disk_rules_keep_one_episode_per_mount() -> None:
    spec = spec_from_rule(rule(metric="disk", threshold=80))

    def disks(i, root, data):
        return sample(
            i,
            disks=(
                DiskSample(mount="/", total_bytes=100, used_bytes=root, free_bytes=100 - root, percent=root),
                DiskSample(
                    mount="/data", total_bytes=100, used_bytes=data, free_bytes=100 - data, percent=data
                ),
            ),
        )

    state = new_state()
    e1 = evaluate_sample(spec, disks(0, 85, 10), state)
    e2 = evaluate_sample(spec, disks(1, 85, 90), state)
    assert [(e.subject, e.state) for e in e1 + e2] == [("/", "firing"), ("/data", "firing")]
    assert e1[0].episode_id != e2[0].episode_id


def test_network_rate_comes_from_counters_and_a_reset_has_no_rate() -> None:
    spec = spec_from_rule(rule(metric="net_rx", threshold=1000))

    def net(i, recv):
        return sample(i, interfaces=(InterfaceSample(interface="eth0", bytes_sent=0, bytes_recv=recv),))

    state = new_state()
    assert evaluate_sample(spec, net(0, 0), state) == []  # no rate from a single sample
    fired = evaluate_sample(spec, net(1, 20_000), state)  # 2000 B/s
    assert fired[0].value == 2000 and fired[0].subject == "eth0"
    assert evaluate_sample(spec, net(2, 5), state) == []  # reset: no rate, nothing changes
    resolved = evaluate_sample(spec, net(3, 105), state)  # 10 B/s
    assert [e.state for e in resolved] == ["resolved"]


def test_changing_a_rule_restarts_pending_timers_but_keeps_open_episodes() -> None:
    spec = spec_from_rule(rule(for_seconds=20))
    state = new_state()
    evaluate_sample(spec, sample(0, 95), state)
    evaluate_sample(spec, sample(1, 95), state)
    changed = spec_from_rule(rule(for_seconds=20, threshold=92, updated_at=T0 + timedelta(hours=1)))
    assert evaluate_sample(changed, sample(2, 95), state) == []  # would have fired under the old one
    assert [e.state for e in evaluate_sample(changed, sample(4, 95), state)] == ["firing"]
    again = spec_from_rule(rule(threshold=80, updated_at=T0 + timedelta(hours=2)))
    assert evaluate_sample(again, sample(5, 95), state) == []  # still the same open episode
    closed = close_removed(again, SERVER, state, T0 + timedelta(minutes=5))
    assert [e.state for e in closed] == ["resolved"]


def test_backtest_replay_equals_step_by_step_evaluation() -> None:
    spec = spec_from_rule(rule(for_seconds=10, clear_threshold=80, clear_for_seconds=10))
    values = [95, 95, 95, 85, 79, 79, 79, 95, 95, 50, 50]
    live, _ = run(spec, values)
    samples = [sample(i, v) for i, v in enumerate(values)]
    replayed = replay(spec, list(reversed(samples)))
    assert replayed == live
    eps = episodes(replayed)
    assert len(eps) == 2 and eps[0].resolved_at is not None and eps[1].resolved_at is not None


def test_disk_fill_rate_example_fires_on_a_filling_disk_only() -> None:
    (spec,) = load("alerting.examples.disk_fill_rate", OWNER)
    total = 1_000_000_000
    state = new_state()
    events = []
    for i in range(60):  # a disk filling 10 MB per minute with 300 MB free: 30 min to full
        used = 600_000_000 + i * 10_000_000
        s = sample(
            i,
            step=60,
            disks=(
                DiskSample(
                    mount="/var",
                    total_bytes=total,
                    used_bytes=min(used, total),
                    free_bytes=max(total - used, 0),
                    percent=min(used, total) / total * 100,
                ),
            ),
        )
        events.extend(evaluate_sample(spec, s, state))
        state = orjson.loads(orjson.dumps(state))
    assert [e.state for e in events][:1] == ["firing"]
    assert events[0].origin == "code" and events[0].subject == "/var"
    steady = new_state()
    quiet = []
    for i in range(60):
        s = sample(
            i,
            step=60,
            disks=(
                DiskSample(mount="/", total_bytes=total, used_bytes=900, free_bytes=total - 900, percent=0.1),
            ),
        )
        quiet.extend(evaluate_sample(spec, s, steady))
    assert quiet == []
