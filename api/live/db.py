"""The live sockets' SQL: history for the backfill, read with the seam position in one snapshot.

The persistence processor writes each batch's rows and the highest Kafka offset it persisted per
partition (`persisted_offsets`) in one transaction. Reading both in one REPEATABLE READ snapshot
gives rows that hold exactly the messages up to `last_offset`: Kafka from `last_offset + 1` on
completes them with nothing missing and nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Literal, TypeVar

import asyncpg
from pydantic import TypeAdapter

from api import db as api_db
from schemas.canonical import DiskSample, InterfaceSample

from .errors import Unavailable
from .hub import TP

_DISKS = TypeAdapter(tuple[DiskSample, ...])
_INTERFACES = TypeAdapter(tuple[InterfaceSample, ...])

BUCKETS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MetricRow:
    time: datetime
    cpu_percent: float
    memory_percent: float
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    load1: float | None
    load5: float | None
    load15: float | None
    uptime_seconds: int | None
    cpu_cores: int | None
    disks: tuple[DiskSample, ...]
    interfaces: tuple[InterfaceSample, ...]
    samples: int | None = None  # aggregated rows: how many raw samples the bucket holds


@dataclass(frozen=True, slots=True)
class LogRow:
    time: datetime
    entry_id: uuid.UUID
    level: str
    source: str | None
    message: str


@dataclass(frozen=True, slots=True)
class History(Generic[T]):
    last_offset: int | None  # None: nothing of this partition persisted yet
    rows: list[T]


_RAW_METRICS = """
SELECT m.time, m.cpu_percent, m.memory_percent, m.memory_total_bytes, m.memory_used_bytes,
       m.load1, m.load5, m.load15, m.uptime_seconds, m.cpu_cores,
       (SELECT coalesce(json_agg(json_build_object(
                   'mount', d.mount, 'total_bytes', d.total_bytes, 'used_bytes', d.used_bytes,
                   'free_bytes', d.free_bytes, 'percent', d.percent) ORDER BY d.mount), '[]')
        FROM metric_disks d WHERE d.server_id = m.server_id AND d.time = m.time)::text AS disks,
       (SELECT coalesce(json_agg(json_build_object(
                   'interface', i.interface, 'bytes_sent', i.bytes_sent, 'bytes_recv', i.bytes_recv,
                   'packets_sent', i.packets_sent, 'packets_recv', i.packets_recv,
                   'errors_in', i.errors_in, 'errors_out', i.errors_out) ORDER BY i.interface), '[]')
        FROM metric_interfaces i WHERE i.server_id = m.server_id AND i.time = m.time)::text AS interfaces
FROM (SELECT * FROM metrics WHERE server_id = $1 AND time >= $2 ORDER BY time DESC LIMIT $3) m
ORDER BY m.time
"""

# Aggregated history: averages per bucket (the bucket width is one of BUCKETS, never user text).
_BUCKETED_METRICS = """
SELECT b.bucket AS time, b.cpu_percent, b.memory_percent, b.memory_total_bytes, b.memory_used_bytes,
       b.load1, b.load5, b.load15, b.uptime_seconds, b.cpu_cores, '[]' AS disks, '[]' AS interfaces,
       b.samples
FROM (
    SELECT time_bucket($4::interval, time) AS bucket, avg(cpu_percent) AS cpu_percent,
           avg(memory_percent) AS memory_percent, max(memory_total_bytes) AS memory_total_bytes,
           avg(memory_used_bytes)::bigint AS memory_used_bytes, avg(load1) AS load1,
           avg(load5) AS load5, avg(load15) AS load15, max(uptime_seconds) AS uptime_seconds,
           max(cpu_cores) AS cpu_cores, count(*) AS samples
    FROM metrics WHERE server_id = $1 AND time >= $2
    GROUP BY bucket ORDER BY bucket DESC LIMIT $3
) b
ORDER BY b.bucket
"""

_LOGS = """
SELECT time, entry_id, level, source, message FROM (
    SELECT * FROM logs WHERE server_id = $1 ORDER BY time DESC, entry_id DESC LIMIT $2
) l ORDER BY time, entry_id
"""

_LAST_OFFSET = "SELECT last_offset FROM persisted_offsets WHERE topic = $1 AND partition = $2"


def _metric_row(r: asyncpg.Record) -> MetricRow:
    return MetricRow(
        time=r["time"],
        cpu_percent=r["cpu_percent"],
        memory_percent=r["memory_percent"],
        memory_total_bytes=r["memory_total_bytes"],
        memory_used_bytes=r["memory_used_bytes"],
        load1=r["load1"],
        load5=r["load5"],
        load15=r["load15"],
        uptime_seconds=r["uptime_seconds"],
        cpu_cores=r["cpu_cores"],
        disks=_DISKS.validate_json(r["disks"]),
        interfaces=_INTERFACES.validate_json(r["interfaces"]),
        samples=r.get("samples"),
    )


async def metrics_history(
    pool: api_db.Pool,
    server_id: uuid.UUID,
    tp: TP,
    since: datetime,
    limit: int,
    resolution: Literal["raw", "1m", "5m", "1h"],
) -> History[MetricRow]:
    """The server's samples since `since` (the newest `limit` of them, oldest first) and the
    offset of `tp` they are complete up to, read in one snapshot."""
    try:
        async with (
            api_db.connection(pool) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            last = await conn.fetchval(_LAST_OFFSET, tp.topic, tp.partition)
            if resolution == "raw":
                rows = await conn.fetch(_RAW_METRICS, server_id, since, limit)
            else:
                rows = await conn.fetch(_BUCKETED_METRICS, server_id, since, limit, BUCKETS[resolution])
    except (api_db.DatabaseUnavailable, asyncpg.PostgresConnectionError, TimeoutError) as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    return History(last, [_metric_row(r) for r in rows])


async def logs_history(pool: api_db.Pool, server_id: uuid.UUID, tp: TP, limit: int) -> History[LogRow]:
    """The server's newest `limit` log lines (oldest first) and the offset they are complete up to."""
    try:
        async with (
            api_db.connection(pool) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            last = await conn.fetchval(_LAST_OFFSET, tp.topic, tp.partition)
            rows = await conn.fetch(_LOGS, server_id, limit) if limit > 0 else []
    except (api_db.DatabaseUnavailable, asyncpg.PostgresConnectionError, TimeoutError) as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    return History(
        last,
        [LogRow(r["time"], r["entry_id"], r["level"], r["source"], r["message"]) for r in rows],
    )
