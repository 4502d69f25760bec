"""Stored samples, logs and rollups, read back.

Every query names its server and a closed time range, and is capped by a LIMIT: none scans
without bound. Aggregates use time_bucket over the raw hypertables.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from .pool import Executor

METRIC_COLUMNS = frozenset({"cpu_percent", "memory_percent", "memory_used_bytes", "load1", "load5", "load15"})
DISK_COLUMNS = frozenset({"percent", "used_bytes"})


async def latest_metric(conn: Executor, server_id: uuid.UUID) -> asyncpg.Record | None:
    # The newest chunk holds the answer: bounded by the (server_id, time) primary key index.
    return await conn.fetchrow(
        """
        SELECT server_id, time, cpu_percent, memory_percent, memory_total_bytes, memory_used_bytes,
               load1, load5, load15, uptime_seconds, cpu_cores, received_at
        FROM metrics WHERE server_id = $1 ORDER BY time DESC LIMIT 1
        """,
        server_id,
    )


async def disks_at(conn: Executor, server_id: uuid.UUID, at: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT mount, total_bytes, used_bytes, free_bytes, percent FROM metric_disks "
        "WHERE server_id = $1 AND time = $2 ORDER BY mount",
        server_id,
        at,
    )


async def interfaces_at(conn: Executor, server_id: uuid.UUID, at: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT interface, bytes_sent, bytes_recv, packets_sent, packets_recv, errors_in, errors_out "
        "FROM metric_interfaces WHERE server_id = $1 AND time = $2 ORDER BY interface",
        server_id,
        at,
    )


async def metric_raw(
    conn: Executor, column: str, server_id: uuid.UUID, start: datetime, end: datetime, limit: int
) -> list[asyncpg.Record]:
    if column not in METRIC_COLUMNS:
        raise ValueError(column)
    return await conn.fetch(
        f"""
        SELECT time, {column}::float8 AS value FROM metrics
        WHERE server_id = $1 AND time >= $2 AND time < $3 AND {column} IS NOT NULL
        ORDER BY time LIMIT $4
        """,
        server_id,
        start,
        end,
        limit,
    )


ROLLUP_TABLES = {"1m": "metric_rollups_1m", "1h": "metric_rollups_1h"}


async def rollup_series(
    conn: Executor,
    resolution: str,
    server_id: uuid.UUID,
    metric: str,
    label: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Buckets from the persistence processor's rollups (kept equal to SQL over the raw rows);
    metric names are the rollups' (`cpu_percent`, `disk_percent`, `net_rx_bytes_per_s`, ...)."""
    table = ROLLUP_TABLES[resolution]
    return await conn.fetch(
        f"""
        SELECT bucket AS time, avg AS value, min, max, count AS samples FROM {table}
        WHERE server_id = $1 AND metric = $2 AND label = $3 AND bucket >= $4 AND bucket < $5
        ORDER BY bucket LIMIT $6
        """,
        server_id,
        metric,
        label,
        start,
        end,
        limit,
    )


async def disk_raw(
    conn: Executor, column: str, server_id: uuid.UUID, mount: str, start: datetime, end: datetime, limit: int
) -> list[asyncpg.Record]:
    if column not in DISK_COLUMNS:
        raise ValueError(column)
    return await conn.fetch(
        f"""
        SELECT time, {column}::float8 AS value FROM metric_disks
        WHERE server_id = $1 AND mount = $2 AND time >= $3 AND time < $4
        ORDER BY time LIMIT $5
        """,
        server_id,
        mount,
        start,
        end,
        limit,
    )


async def interface_rates(
    conn: Executor,
    server_id: uuid.UUID,
    interface: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Bytes per second sent and received, one point per sample, from the counter difference to
    the previous sample of the interface (as the rollups derive them). A counter that went down
    (a reboot) gives no rate for that interval, never a negative one."""
    return await conn.fetch(
        """
        SELECT i.time,
               CASE WHEN i.bytes_sent >= p.bytes_sent
                    THEN (i.bytes_sent - p.bytes_sent) / extract(epoch FROM i.time - p.time)::float8
               END AS sent_per_second,
               CASE WHEN i.bytes_recv >= p.bytes_recv
                    THEN (i.bytes_recv - p.bytes_recv) / extract(epoch FROM i.time - p.time)::float8
               END AS recv_per_second
        FROM metric_interfaces i
        CROSS JOIN LATERAL (
            SELECT q.time, q.bytes_sent, q.bytes_recv FROM metric_interfaces q
            WHERE q.server_id = i.server_id AND q.interface = i.interface AND q.time < i.time
            ORDER BY q.time DESC LIMIT 1
        ) p
        WHERE i.server_id = $1 AND i.interface = $2 AND i.time >= $3 AND i.time < $4
        ORDER BY i.time LIMIT $5
        """,
        server_id,
        interface,
        start,
        end,
        limit,
    )


async def search_logs(
    conn: Executor,
    server_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    levels: list[str] | None,
    source: str | None,
    text: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first. `after` is the cursor: the (time, entry_id) of the previous page's last row;
    the next page starts strictly below it in that order."""
    like = None
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return await conn.fetch(
        """
        SELECT time, entry_id, level, source, message, received_at FROM logs
        WHERE server_id = $1 AND time >= $2 AND time < $3
          AND ($4::text[] IS NULL OR level = ANY($4))
          AND ($5::text IS NULL OR source = $5)
          AND ($6::text IS NULL OR message ILIKE $6)
          AND ($7::timestamptz IS NULL OR (time, entry_id) < ($7, $8::uuid))
        ORDER BY time DESC, entry_id DESC LIMIT $9
        """,
        server_id,
        start,
        end,
        levels,
        source,
        like,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
