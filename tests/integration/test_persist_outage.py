"""The database goes away mid-stream (through a TCP proxy of our own) and comes back: every
sample is present exactly once, the consumer retried with backoff and never stopped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from schemas.canonical import utcnow
from tests.support.persist import count_metrics, new_env, produce, running, sample, wait_until
from tests.support.tcp_proxy import database_proxy


async def test_database_outage_mid_stream_loses_and_duplicates_nothing(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = await new_env(database_url, kafka_bootstrap, tmp_path / "state")
    servers = [uuid.uuid4() for _ in range(8)]
    start = utcnow() - timedelta(hours=1)
    waves = [
        [
            sample(s, start + timedelta(seconds=5 * (wave * 50 + i)), cpu=float(i))
            for s in servers
            for i in range(50)
        ]
        for wave in range(3)
    ]
    total = sum(len(w) for w in waves)

    with database_proxy(database_url) as (proxy, through_proxy):
        settings = env.settings(
            common=env.common.model_copy(update={"database_url": through_proxy}), batch_max_records=50
        )
        async with running(settings) as service:
            await produce(env, waves[0])
            await wait_until(lambda: _at_least(database_url, servers, 1), what="the first rows")
            proxy.cut()  # PostgreSQL is gone for the processor, mid-stream
            await produce(env, waves[1])
            await wait_until(lambda: _retried(service, 3), what="retries while the database is away")
            stuck = (await count_metrics(database_url, servers))[0]
            assert stuck < total
            await asyncio.sleep(0)
            proxy.restore()
            await produce(env, waves[2])
            await wait_until(lambda: _at_least(database_url, servers, total), timeout=90, what="every sample")
            assert not service.should_stop  # still running: no crash, no restart
            assert service.stats.db_retries >= 3
    assert await count_metrics(database_url, servers) == (total, total)


async def _at_least(dsn: str, servers: list[uuid.UUID], n: int) -> bool:
    return (await count_metrics(dsn, servers))[0] >= n


async def _retried(service: object, n: int) -> bool:
    return bool(service.stats.db_retries >= n)  # type: ignore[attr-defined]
