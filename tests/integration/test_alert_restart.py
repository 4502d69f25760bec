"""Restarts and rebalances of real alert worker processes: a pending alert is neither lost nor
fired twice, because its state is snapshotted to the engine's changelog and restored before a
partition is evaluated, and episode ids are stable. These are the "no stall" scenarios: each
step waits for samples to be evaluated by the workers now in the group (a stalled worker fails
the wait). `tests/loops/alert_stall.sh` runs them in a loop."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from tests.support.alerts import (
    T0,
    AlertEnv,
    Bus,
    Sentinel,
    Worker,
    add_owner_with_servers,
    alert_events,
    episodes,
    group_members,
    make_rule,
    make_sample,
    rules_loaded,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)  # up to three worker starts (START_SECONDS)


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("stop", ["graceful", "kill"])
async def test_a_worker_restarted_while_an_alert_is_pending_neither_loses_nor_duplicates_it(
    alert_env: AlertEnv, stop: str
) -> None:
    dsn = alert_env.common.database_url
    app_id = f"alerts-restart-{uuid.uuid4().hex[:6]}"
    owner, (server,) = await add_owner_with_servers(dsn, 1)
    rule = make_rule(server, owner, for_seconds=60)
    first = alert_env.worker(app_id).start()
    async with Bus(alert_env) as bus:
        sentinel = Sentinel(bus, dsn, server, owner)
        await sentinel.install()
        await bus.rule(rule)
        await rules_loaded([first], sentinel, rule)
        await bus.samples([make_sample(server, s, 95) for s in (0, 10, 20, 30)])
        await sentinel.mark(35, [first], cpu=95)  # pending since t = 0, evaluated by the first worker
        assert await episodes(dsn, rule.rule_id) == []
        # SIGTERM, or SIGKILL (nothing flushed or committed on the way out). The samples below
        # are on the topic before the second worker restores its partitions.
        first.stop() if stop == "graceful" else first.kill()
        second = alert_env.worker(app_id).start()
        await bus.samples([make_sample(server, s, 95) for s in (40, 50, 60, 70)])
        # Its process up first (a start on a loaded machine is slow, and is no stall); then the
        # sentinel's limit counts from there: join, restore, evaluate.
        await rules_loaded([second], sentinel, rule)
        await sentinel.mark(75, [second], cpu=95)
    rows = await episodes(dsn, rule.rule_id)
    # Fired at t = 60 for a condition held since t = 0: the pending state survived the kill.
    assert [(r["state"], r["started_at"], r["fired_at"]) for r in rows] == [("firing", at(0), at(60))]
    events = await alert_events(alert_env, {server})
    fired = {e.episode_id for e in events if e.rule_id == rule.rule_id}
    assert fired == {rows[0]["episode_id"]}  # replays after the kill may repeat it, never a new one


async def test_a_rebalance_from_one_to_three_workers_and_back_neither_loses_nor_duplicates_episodes(
    alert_env: AlertEnv,
) -> None:
    """1 -> 2 -> 3 workers (joins), then 3 -> 2 (a graceful leave) -> 1 (a SIGKILL): every step
    moves partitions, with their states restored from the changelog before they are evaluated."""
    dsn = alert_env.common.database_url
    app_id = f"alerts-rebalance-{uuid.uuid4().hex[:6]}"
    group = f"{alert_env.prefix}{app_id}-alerts"
    bootstrap = alert_env.common.kafka_bootstrap
    owner, servers = await add_owner_with_servers(dsn, 8)  # spread over the 4 partitions
    rule = make_rule(None, owner, name="cpu (all servers)", for_seconds=60)  # owner-wide
    a = alert_env.worker(app_id).start()
    workers = [a]

    async def members(count: int) -> None:
        await wait_for(
            f"{count} workers in the group",
            lambda: _members_are(bootstrap, group, count),
            workers=workers,
            within=120,
        )

    async with Bus(alert_env) as bus:
        sentinels = [Sentinel(bus, dsn, s, owner) for s in servers]
        for sentinel in sentinels:
            await sentinel.install()
        await bus.rule(rule)
        await rules_loaded([a], rule, *sentinels)

        async def step(times: tuple[int, ...], cpu: float, mark: int, by: list[Worker]) -> None:
            await bus.samples([make_sample(s, t, cpu) for t in times for s in servers])
            await asyncio.gather(*(sentinel.mark(mark, by, cpu=cpu, within=120) for sentinel in sentinels))

        await step((0, 10, 20, 30), 95, 35, [a])  # pending since 0 on every server, one worker
        b = alert_env.worker(app_id).start()
        workers.append(b)
        await rules_loaded([b], rule, *sentinels)
        await members(2)
        await step((40, 50), 95, 55, [a, b])
        assert await episodes(dsn, rule.rule_id) == []
        c = alert_env.worker(app_id).start()
        workers.append(c)
        await rules_loaded([c], rule, *sentinels)
        await members(3)
        await step((60, 70), 95, 75, [a, b, c])  # fires at 60 for a condition held since 0
        firing = await episodes(dsn, rule.rule_id)
        assert sorted((r["server_id"], r["state"], r["started_at"], r["fired_at"]) for r in firing) == sorted(
            (s, "firing", at(0), at(60)) for s in servers
        )
        c.stop()  # graceful: leaves the group at once
        await members(2)
        await step((80, 90), 50, 95, [a, b])  # resolves what other workers saw begin
        b.kill()  # its partitions come back to `a` after the session timeout
        await members(1)
        await step((100, 110), 95, 115, [a])  # pending again, not firing yet
    rows = await episodes(dsn, rule.rule_id)
    assert sorted((r["server_id"], r["state"], r["started_at"], r["resolved_at"]) for r in rows) == sorted(
        (s, "resolved", at(0), at(80)) for s in servers
    )
    events = await alert_events(alert_env, set(servers))
    assert {e.episode_id for e in events if e.rule_id == rule.rule_id} == {r["episode_id"] for r in rows}


async def _members_are(bootstrap: str, group: str, count: int) -> bool:
    return await group_members(bootstrap, group) == count
