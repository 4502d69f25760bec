"""The alert engine on the real Kafka and TimescaleDB, in a real worker process: `for`,
hysteresis, no-data, rule changes through the compacted topic, and backtest == live."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from alerting.replay import backtest
from api.db.backtest import load_samples
from tests.support.alerts import (
    T0,
    AlertEnv,
    Bus,
    Sentinel,
    Worker,
    episodes,
    make_rule,
    make_sample,
    new_env,
    rules_loaded,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)
OWNER = uuid.uuid4()


@pytest.fixture(scope="module")
def env(database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AlertEnv:
    return asyncio.run(new_env(database_url, kafka_bootstrap, Path(tmp_path_factory.mktemp("alerts"))))


@pytest.fixture(scope="module")
def worker(env: AlertEnv) -> Iterator[Worker]:
    w = env.worker(f"alerts-engine-{uuid.uuid4().hex[:6]}").start()
    yield w
    w.stop()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_for_delays_firing_until_the_condition_held_long_enough(env: AlertEnv, worker: Worker) -> None:
    dsn = env.common.database_url
    server = uuid.uuid4()
    rule = make_rule(server, OWNER, for_seconds=30)
    async with Bus(env) as bus:
        sentinel = Sentinel(bus, dsn, server, OWNER)
        await sentinel.install()
        await bus.rule(rule)
        await rules_loaded([worker], sentinel, rule)
        # Breaching for 20 s only (t = 0, 10, 20), then back to normal: nothing may fire.
        await bus.samples([make_sample(server, s, cpu) for s, cpu in ((0, 95), (10, 95), (20, 95), (30, 50))])
        await sentinel.mark(35, [worker])
        assert await episodes(dsn, rule.rule_id) == []
        # Breaching from t = 40: fires at t = 70, when it has held 30 s, and not before.
        await bus.samples([make_sample(server, s, 95) for s in (40, 50, 60, 70, 80)])
        rows = await wait_for("firing", lambda: episodes(dsn, rule.rule_id), workers=[worker])
    assert [(r["state"], r["started_at"], r["fired_at"], r["fired_value"]) for r in rows] == [
        ("firing", at(40), at(70), 95.0)
    ]


async def test_hysteresis_stops_flapping_at_the_threshold(env: AlertEnv, worker: Worker) -> None:
    dsn = env.common.database_url
    server = uuid.uuid4()
    rule = make_rule(server, OWNER, clear_threshold=85.0, clear_for_seconds=20)
    hovering = [95, 89.5, 90.5, 89.9, 91, 88, 92, 86.0, 95, 89, 91, 84, 84, 84]
    async with Bus(env) as bus:
        sentinel = Sentinel(bus, dsn, server, OWNER)
        await sentinel.install()
        await bus.rule(rule)
        await rules_loaded([worker], sentinel, rule)
        await bus.samples([make_sample(server, i * 10, v) for i, v in enumerate(hovering)])
        await sentinel.mark(len(hovering) * 10, [worker])
    rows = await episodes(dsn, rule.rule_id)
    # One episode: fired at t = 0, resolved when <= 85 had held 20 s (t = 110 -> 130).
    assert [(r["state"], r["fired_at"], r["resolved_at"]) for r in rows] == [("resolved", at(0), at(130))]


async def test_no_data_fires_after_n_intervals_and_resolves_when_data_returns(
    env: AlertEnv, worker: Worker
) -> None:
    dsn = env.common.database_url
    server = uuid.uuid4()
    rule = make_rule(
        server, OWNER, name="silent", metric="no_data", threshold=0.0, interval_seconds=2, no_data_intervals=2
    )
    async with Bus(env) as bus:
        await bus.rule(rule)
        await rules_loaded([worker], rule)
        for i in range(4):
            last_received = datetime.now(UTC)
            await bus.samples([make_sample(server, i, received_at=last_received)])
            await asyncio.sleep(0.5)
        # Nothing more is sent: the worker's clock finds the silence after 2 intervals.
        rows = await wait_for("no-data firing", lambda: episodes(dsn, rule.rule_id), workers=[worker])
        assert [(r["state"], r["started_at"], r["fired_at"]) for r in rows] == [
            ("firing", last_received, last_received + timedelta(seconds=4))
        ]
        returned = datetime.now(UTC)
        await bus.samples([make_sample(server, 60, received_at=returned)])

        async def resolved() -> list[dict[str, object]]:
            return [r for r in await episodes(dsn, rule.rule_id) if r["state"] == "resolved"]

        done = await wait_for("no-data resolved", resolved, workers=[worker])
    assert [(r["episode_id"], r["resolved_at"]) for r in done] == [(rows[0]["episode_id"], returned)]


async def test_a_rule_changed_or_deleted_on_the_topic_takes_effect_without_a_restart(
    env: AlertEnv, worker: Worker
) -> None:
    dsn = env.common.database_url
    server = uuid.uuid4()
    rule = make_rule(server, OWNER, threshold=90.0)
    async with Bus(env) as bus:
        sentinel = Sentinel(bus, dsn, server, OWNER)
        await sentinel.install()
        await bus.rule(rule)
        await rules_loaded([worker], sentinel, rule)
        await bus.samples([make_sample(server, 0, 80)])
        await sentinel.mark(5, [worker])
        assert await episodes(dsn, rule.rule_id) == []  # 80 is not above 90
        await bus.rule(rule.model_copy(update={"threshold": 70.0, "updated_at": datetime.now(UTC)}))
        clock = [10.0]

        async def fired_after_change() -> list[dict[str, object]]:
            clock[0] += 10
            await bus.samples([make_sample(server, clock[0], 80)])
            return await episodes(dsn, rule.rule_id)

        rows = await wait_for("the changed rule to fire", fired_after_change, workers=[worker])
        assert rows[0]["state"] == "firing" and rows[0]["started_at"] > at(5)
        # Deleting the rule (a tombstone) resolves its open episode at the next sample.
        await bus.delete_rule(rule.rule_id)

        async def resolved_after_delete() -> bool:
            clock[0] += 10
            await bus.samples([make_sample(server, clock[0], 80)])
            return any(r["state"] == "resolved" for r in await episodes(dsn, rule.rule_id))

        await wait_for("the deleted rule's episode to resolve", resolved_after_delete, workers=[worker])
    assert len(await episodes(dsn, rule.rule_id)) == 1


async def test_backtest_over_stored_data_matches_the_live_engine(env: AlertEnv, worker: Worker) -> None:
    dsn = env.common.database_url
    server = uuid.uuid4()
    rule = make_rule(server, OWNER, metric="disk", threshold=80.0, for_seconds=20, clear_threshold=70.0)
    values = [50, 85, 85, 85, 90, 75, 72, 69, 85, 85, 85, 85, 60, 95, 95, 95, 50]
    samples = [make_sample(server, i * 10, 10, disk_percent=v) for i, v in enumerate(values)]
    conn = await asyncpg.connect(dsn)
    try:
        # The stored history (what the persistence processor writes), and the same samples live.
        await conn.executemany(
            """INSERT INTO metrics (server_id, time, cpu_percent, memory_percent, received_at)
               VALUES ($1, $2, $3, $4, $5)""",
            [(s.server_id, s.time, s.cpu_percent, s.memory_percent, s.received_at) for s in samples],
        )
        await conn.executemany(
            """INSERT INTO metric_disks (server_id, time, mount, total_bytes, used_bytes, free_bytes, percent)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            [
                (s.server_id, s.time, d.mount, d.total_bytes, d.used_bytes, d.free_bytes, d.percent)
                for s in samples
                for d in s.disks
            ],
        )
        async with Bus(env) as bus:
            sentinel = Sentinel(bus, dsn, server, OWNER)
            await sentinel.install()
            await bus.rule(rule)
            await rules_loaded([worker], sentinel, rule)
            await bus.samples(samples)
            await sentinel.mark(len(values) * 10, [worker])
        live = await episodes(dsn, rule.rule_id)
        end = at(len(values) * 10)
        replayed = backtest(rule, await load_samples(conn, [server], at(0), end), end)
    finally:
        await conn.close()
    assert len(live) == 3  # from 10 (fired 30, resolved 70), from 80 (100, 120), from 130 (150, 160)
    assert [
        (e.episode_id, e.subject, e.started_at, e.fired_at, e.fired_value, e.resolved_at, e.resolved_value)
        for e in replayed
    ] == [
        (
            r["episode_id"],
            r["subject"],
            r["started_at"],
            r["fired_at"],
            r["fired_value"],
            r["resolved_at"],
            r["resolved_value"],
        )
        for r in live
    ]
