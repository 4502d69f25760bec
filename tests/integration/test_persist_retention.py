"""Retention drops, with drop_chunks on the app's timer, only what is older than each tier's
setting. It runs on a database of its own (`private_database`): dropping chunks of a shared one
would take other tests' old rows with it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from schemas.canonical import utcnow
from schemas.settings import CommonSettings, Environment
from stream_processors.db import Database
from stream_processors.retention import RetentionService, retention_plan
from stream_processors.settings import ProcessorSettings
from tests.support.persist import wait_until

Conn = psycopg.AsyncConnection[tuple[object, ...]]


@pytest.fixture
async def conn(private_database: str) -> AsyncIterator[Conn]:
    connection = await psycopg.AsyncConnection.connect(private_database, autocommit=True)
    try:
        yield connection
    finally:
        await connection.close()


def settings_for(dsn: str, tmp_path: Path, **values: Any) -> ProcessorSettings:
    common = CommonSettings(env=Environment.TEST, state_dir=tmp_path, database_url=dsn)
    return ProcessorSettings(common=common, **values)


async def test_each_tier_drops_only_what_is_older_than_its_setting(
    conn: Conn, private_database: str, tmp_path: Path
) -> None:
    server = uuid.uuid4()
    now = utcnow()
    raw_ages = [timedelta(days=d) for d in (0, 1, 5, 6.9, 9, 12, 30)]
    for age in raw_ages:
        t = now - age
        await conn.execute(
            "INSERT INTO metrics (server_id, time, cpu_percent, memory_percent) VALUES (%s, %s, 1, 1)",
            (server, t),
        )
        await conn.execute(
            "INSERT INTO logs (server_id, time, entry_id, level, message) VALUES (%s, %s, %s, 'INFO', 'x')",
            (server, t, uuid.uuid4()),
        )
    minute_ages = [timedelta(days=d) for d in (1, 60, 89, 100, 200)]
    hour_ages = [timedelta(days=d) for d in (1, 300, 700, 900, 1500)]
    for table, ages in (("metric_rollups_1m", minute_ages), ("metric_rollups_1h", hour_ages)):
        for age in ages:
            await conn.execute(
                f"INSERT INTO {table} "
                "(server_id, metric, bucket, avg, sum, min, max, last, last_time, count) "
                "VALUES (%s, 'cpu_percent', %s, 1, 1, 1, 1, 1, %s, 1)",
                (server, now - age, now - age),
            )

    settings = settings_for(
        private_database,
        tmp_path,
        retention_raw=timedelta(days=7),
        retention_interval_seconds=0.2,
        stale_check_interval_seconds=3600,
    )
    assert settings.retention_1m == timedelta(days=90) and settings.retention_1h == timedelta(days=730)
    assert {table for table, _ in retention_plan(settings)} >= {"metrics", "logs", "metric_rollups_1m"}
    database = Database(settings)
    await database.start()
    service = RetentionService(settings, database)
    await service.start()  # the timer runs a pass at once, then every retention_interval_seconds
    try:
        await wait_until(lambda: _runs(service, 2), what="two retention passes")
    finally:
        await service.stop()
        await database.stop()

    day = timedelta(days=1)
    # (table, time column, ages inserted, retention setting, chunk interval of the table)
    for table, column, ages, keep, chunk in (
        ("metrics", "time", raw_ages, timedelta(days=7), day),
        ("logs", "time", raw_ages, timedelta(days=7), day),
        ("metric_rollups_1m", "bucket", minute_ages, timedelta(days=90), 7 * day),
        ("metric_rollups_1h", "bucket", hour_ages, timedelta(days=730), 90 * day),
    ):
        cur = await conn.execute(
            f"SELECT {column} FROM {table} WHERE server_id = %s ORDER BY 1 DESC", (server,)
        )
        left = [row[0] for row in await cur.fetchall() if isinstance(row[0], datetime)]
        # Everything younger than the setting stays; whatever is older than the setting plus one
        # chunk is gone (a chunk goes only when all of it is older than the setting).
        assert left[: len([a for a in ages if a < keep])] == [now - a for a in ages if a < keep], table
        assert all(now - t < keep + chunk for t in left), (table, left)
        assert len(left) < len(ages), table


async def _runs(service: RetentionService, n: int) -> bool:
    return service.runs >= n
