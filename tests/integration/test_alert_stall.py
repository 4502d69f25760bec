"""A worker that holds partitions and cannot make progress says so: its /health answers 503
("stalled") and `fleetpulse_alert_engine_stalled` is 1, and both clear once it progresses again.

The worker here is real and so is what stops it: its database hangs (a transaction holds an
exclusive lock on `servers`, so the owner lookup of each batch waits), in a database of this
test's own. Samples wait in its partitions and nothing is committed; that is the condition the
watchdog reports, whatever the cause (docs/alerts.md, "Stall detection")."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.alerts import (
    AlertEnv,
    Bus,
    Sentinel,
    Worker,
    add_owner_with_servers,
    make_sample,
    new_env,
    rules_loaded,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)
STALL_AFTER = 3.0


async def _health(worker: Worker) -> tuple[int, dict[str, Any], str]:
    """(status code, /health body, /alerts/metrics text); (0, {}, "") while it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            health = await client.get(f"http://127.0.0.1:{worker.web_port}/health")
            metrics = await client.get(f"http://127.0.0.1:{worker.web_port}/alerts/metrics")
        return health.status_code, health.json(), metrics.text
    except (httpx.HTTPError, ValueError):
        return 0, {}, ""


def _stalled_metric(metrics: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith("fleetpulse_alert_engine_stalled "):
            return float(line.split()[1])
    return None


async def test_a_worker_that_cannot_progress_reports_a_stall_and_clears_it_when_it_progresses(
    private_database: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    dsn = private_database
    env: AlertEnv = await new_env(dsn, kafka_bootstrap, tmp_path)
    owner, (server,) = await add_owner_with_servers(dsn, 1)
    # Owners are cached 1 s in tests: every batch after that looks its owner up again.
    worker = env.worker(f"alerts-stall-{uuid.uuid4().hex[:6]}", stall_after_seconds=STALL_AFTER).start()
    try:
        async with Bus(env) as bus:
            sentinel = Sentinel(bus, dsn, server, owner)
            await sentinel.install()
            await rules_loaded([worker], sentinel)
            await sentinel.mark(10, [worker])  # the worker holds the partitions and evaluates

            async def healthy() -> bool:
                code, body, metrics = await _health(worker)
                return code == 200 and body["status"] == "ok" and _stalled_metric(metrics) == 0.0

            await wait_for("a healthy worker", healthy, workers=[worker])
            _, body, _ = await _health(worker)
            assert body["engine"]["assigned_partitions"] > 0

            lock = await psycopg.AsyncConnection.connect(dsn)
            try:
                async with lock.transaction():
                    await lock.execute("LOCK TABLE servers IN ACCESS EXCLUSIVE MODE")
                    await bus.samples([make_sample(server, s) for s in (20, 30, 40)])
                    seen: dict[str, Any] = {}

                    async def stalled() -> bool:
                        code, body, metrics = await _health(worker)
                        seen.update(code=code, body=body, metric=_stalled_metric(metrics))
                        return code == 503 and _stalled_metric(metrics) == 1.0

                    await wait_for("the stall reported", stalled, workers=[worker], within=60)
                    engine = seen["body"]["engine"]
                    assert seen["body"]["status"] == "stalled"
                    assert engine["stalled"] is True and engine["lag"] > 0
                    assert engine["seconds_since_progress"] > STALL_AFTER
                    assert worker.alive()
                # The lock is released: the waiting batch goes through and the stall clears.
            finally:
                await lock.close()
            await sentinel.mark(50, [worker])  # everything before it was evaluated
            await wait_for("the stall cleared", healthy, workers=[worker], within=60)
    finally:
        worker.kill()
