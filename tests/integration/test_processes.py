"""Processes carried through, on the real Kafka and TimescaleDB: a legacy agent's processes
(`memory` is RSS in MiB) converted as ingest converts them, persisted by the real persistence
consumer as one row per server (the newest sample's, never replaced by an older one), served by
`GET /metrics/{id}/processes`, and carried by the live metrics frame."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.live.settings import LiveSettings
from schemas.agent_wire import LegacyMetricsFrame
from schemas.canonical import MetricSample
from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, create_server, register, running_api
from tests.support.live_harness import ApiServer, Publisher, add_server, add_user, client, sample
from tests.support.persist import PersistEnv, new_env, produce, running, scalar, wait_until

MIB = 1024 * 1024


@pytest.fixture
async def env(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> PersistEnv:
    return await new_env(database_url, kafka_bootstrap, tmp_path / "state")


def legacy_sample(server: uuid.UUID, at: datetime, processes: list[dict[str, Any]]) -> MetricSample:
    """What ingest publishes for a legacy agent's metrics frame (its own conversion)."""
    frame = LegacyMetricsFrame.model_validate(
        {
            "type": "metrics",
            "data": {
                "timestamp": at.isoformat(),
                "cpu": {"usage_percent": 10, "cores": 2},
                "memory": {"total_gb": 4, "used_gb": 1, "available_gb": 3, "usage_percent": 25},
                "processes": processes,
            },
        }
    )
    return frame.to_canonical(server, at, max_processes=2)


async def test_processes_are_persisted_newest_per_server_and_served(env: PersistEnv) -> None:
    dsn = env.common.database_url
    async with running_api(api_settings(env.common)) as (_, api):
        owner, stranger = await register(api), await register(api)
        server = await create_server(api, owner)
        quiet = await create_server(api, owner, "quiet")
        now = datetime.now(UTC).replace(microsecond=0)
        many = [
            {"pid": i, "name": f"worker-{i}", "cpu": float(i), "memory": float(500 - i), "user": "app"}
            for i in range(200)
        ]
        newest = legacy_sample(server, now, [*many, {"pid": 9999, "name": "idle", "cpu": 0.0}])
        older = legacy_sample(server, now - timedelta(minutes=1), [{"pid": 1, "name": "old", "cpu": 99.0}])
        # The newest first, then an older (late) one, and a sample without processes.
        bare = legacy_sample(server, now + timedelta(seconds=5), [])
        await produce(env, [newest, older, bare])
        async with running(env.settings()):
            await wait_until(lambda: _metrics_count(dsn, server, 3), what="the three samples persisted")
        assert await scalar(dsn, "SELECT count(*) FROM server_processes WHERE server_id = %s", (server,)) == 1

        r = await api.get(f"/api/v1/metrics/{server}/processes", headers=owner.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert datetime.fromisoformat(body["timestamp"]) == now  # the newest sample with processes
        procs = body["processes"]
        # Top 2 by CPU (199, 198), then top 2 by RSS (0, 1): four of 201, CPU's first.
        assert [p["pid"] for p in procs] == [199, 198, 0, 1]
        first = procs[2]
        assert first == {
            "pid": 0,
            "name": "worker-0",
            "user": "app",
            "status": None,
            "cpu_percent": 0.0,
            "memory_percent": None,  # the legacy `memory` is never a percentage
            "memory_rss_bytes": 500 * MIB,
        }

        # A replay of everything changes nothing; a newer sample replaces the row.
        newer = legacy_sample(server, now + timedelta(seconds=10), [{"pid": 7, "name": "new", "cpu": 5.0}])
        await produce(env, [newest, older, newer])
        async with running(env.settings()):
            await wait_until(lambda: _metrics_count(dsn, server, 4), what="the newer sample persisted")
            await wait_until(
                lambda: _processes_time_is(dsn, server, newer.time), what="the newer processes stored"
            )
        body = (await api.get(f"/api/v1/metrics/{server}/processes", headers=owner.headers)).json()
        assert [(p["pid"], p["name"]) for p in body["processes"]] == [(7, "new")]

        # A server that never sent processes; a stranger gets nothing.
        r = await api.get(f"/api/v1/metrics/{quiet}/processes", headers=owner.headers)
        assert r.json() == {"timestamp": None, "processes": []}
        r = await api.get(f"/api/v1/metrics/{server}/processes", headers=stranger.headers)
        assert r.status_code == 404 and "worker" not in r.text


async def _metrics_count(dsn: str, server: uuid.UUID, n: int) -> bool:
    return bool(await scalar(dsn, "SELECT count(*) FROM metrics WHERE server_id = %s", (server,)) == n)


async def _processes_time_is(dsn: str, server: uuid.UUID, at: datetime) -> bool:
    return bool(await scalar(dsn, "SELECT time FROM server_processes WHERE server_id = %s", (server,)) == at)


async def test_live_metrics_frames_carry_processes(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    async with ApiServer(common_settings, LiveSettings()) as api:
        user = await add_user(db)
        server = await add_server(db, user)
        async with client(api.url("metrics", server), {"type": "auth", "token": api.token(user)}) as c:
            await c.until(lambda f: f["type"] == "history_end")
            with_processes = legacy_sample(
                server, datetime.now(UTC), [{"pid": 3, "name": "db", "cpu": 40.0, "memory": 2048.0}]
            )
            async with Publisher(kafka_bootstrap, topic_prefix) as pub:
                await pub.metric(with_processes)
                await pub.metric(sample(server, 2))
            frame = await c.until(lambda f: f["type"] == "metrics")
            assert frame["data"]["processes"] == [
                {
                    "pid": 3,
                    "name": "db",
                    "cpu_percent": 40.0,
                    "memory_percent": None,
                    "memory_rss_bytes": 2048 * MIB,
                    "user": None,
                    "status": None,
                }
            ]
            plain = await c.until(lambda f: f["type"] == "metrics")
            assert plain["data"]["processes"] is None
