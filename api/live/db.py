"""The live sockets' SQL: history for the backfill, read with the seam position in one snapshot.

The persistence processor writes each batch's rows and the highest Kafka offset it persisted per
partition (`persisted_offsets`) in one transaction. Reading both in one REPEATABLE READ snapshot
gives rows that hold exactly the messages up to `last_offset`: Kafka from `last_offset + 1` on
completes them with nothing missing and nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

import asyncpg
from pydantic import TypeAdapter

from api.db.errors import DatabaseUnavailable
from api.db.pool import Pool, connection
from schemas.canonical import DiskSample, InterfaceSample

from .errors import Unavailable
from .hub import TP

_DISKS = TypeAdapter(tuple[DiskSample, ...])
_INTERFACES = TypeAdapter(tuple[InterfaceSample, ...])

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

# Aggregated history from the persistence processor's rollups (kept equal to SQL over the raw
# rows, recomputed in the same transaction as the rows): one row per bucket, the rollups' metrics
# pivoted into the frame's columns. 5-minute buckets are count-weighted from the 1-minute ones.
_ROLLUP_PIVOT = """
SELECT b.bucket AS time, b.cpu_percent, b.memory_percent, NULL::bigint AS memory_total_bytes,
       b.memory_used_bytes::bigint AS memory_used_bytes, b.load1, b.load5, b.load15,
       NULL::bigint AS uptime_seconds, NULL::int AS cpu_cores, '[]' AS disks, '[]' AS interfaces,
       b.samples
FROM (
    SELECT {bucket} AS bucket,
           sum(avg * count) FILTER (WHERE metric = 'cpu_percent')
               / nullif(sum(count) FILTER (WHERE metric = 'cpu_percent'), 0) AS cpu_percent,
           sum(avg * count) FILTER (WHERE metric = 'memory_percent')
               / nullif(sum(count) FILTER (WHERE metric = 'memory_percent'), 0) AS memory_percent,
           sum(avg * count) FILTER (WHERE metric = 'memory_used_bytes')
               / nullif(sum(count) FILTER (WHERE metric = 'memory_used_bytes'), 0) AS memory_used_bytes,
           sum(avg * count) FILTER (WHERE metric = 'load1')
               / nullif(sum(count) FILTER (WHERE metric = 'load1'), 0) AS load1,
           sum(avg * count) FILTER (WHERE metric = 'load5')
               / nullif(sum(count) FILTER (WHERE metric = 'load5'), 0) AS load5,
           sum(avg * count) FILTER (WHERE metric = 'load15')
               / nullif(sum(count) FILTER (WHERE metric = 'load15'), 0) AS load15,
           (sum(count) FILTER (WHERE metric = 'cpu_percent'))::bigint AS samples
    FROM {table}
    WHERE server_id = $1 AND label = '' AND bucket >= $2
      AND metric IN ('cpu_percent', 'memory_percent', 'memory_used_bytes', 'load1', 'load5', 'load15')
    GROUP BY 1 ORDER BY 1 DESC LIMIT $3
) b
WHERE b.cpu_percent IS NOT NULL
ORDER BY b.bucket
"""
_ROLLUPS = {
    "1m": _ROLLUP_PIVOT.format(bucket="bucket", table="metric_rollups_1m"),
    "5m": _ROLLUP_PIVOT.format(bucket="time_bucket(INTERVAL '5 minutes', bucket)", table="metric_rollups_1m"),
    "1h": _ROLLUP_PIVOT.format(bucket="bucket", table="metric_rollups_1h"),
}

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
    pool: Pool,
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
            connection(pool) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            last = await conn.fetchval(_LAST_OFFSET, tp.topic, tp.partition)
            if resolution == "raw":
                rows = await conn.fetch(_RAW_METRICS, server_id, since, limit)
            else:
                rows = await conn.fetch(_ROLLUPS[resolution], server_id, since, limit)
    except (DatabaseUnavailable, asyncpg.PostgresConnectionError, TimeoutError) as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    return History(last, [_metric_row(r) for r in rows])


async def logs_history(pool: Pool, server_id: uuid.UUID, tp: TP, limit: int) -> History[LogRow]:
    """The server's newest `limit` log lines (oldest first) and the offset they are complete up to."""
    try:
        async with (
            connection(pool) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            last = await conn.fetchval(_LAST_OFFSET, tp.topic, tp.partition)
            rows = await conn.fetch(_LOGS, server_id, limit) if limit > 0 else []
    except (DatabaseUnavailable, asyncpg.PostgresConnectionError, TimeoutError) as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    return History(
        last,
        [LogRow(r["time"], r["entry_id"], r["level"], r["source"], r["message"]) for r in rows],
    )


# --- the fleet sockets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetSeed:
    """The starting state of newly watched servers and the agent-events offset, per partition,
    it is complete up to (`persisted_offsets`; None: nothing of that partition persisted yet)."""

    rows: list[dict[str, object]]
    events_persisted: dict[int, int | None]


_FLEET_SEED = """
SELECT s.id AS server_id, s.status, s.last_seen,
       p.connection_id, p.connected, p.event_time AS presence_time,
       m.time AS sample_time, m.cpu_percent, m.memory_percent,
       d.percent AS disk_percent, d.mount AS disk_mount
FROM servers s
LEFT JOIN server_presence p ON p.server_id = s.id
LEFT JOIN LATERAL (
    SELECT time, cpu_percent, memory_percent FROM metrics
    WHERE server_id = s.id ORDER BY time DESC LIMIT 1
) m ON true
LEFT JOIN LATERAL (
    SELECT mount, percent FROM metric_disks
    WHERE server_id = s.id AND time = m.time ORDER BY percent DESC, mount LIMIT 1
) d ON true
WHERE s.id = ANY($1::uuid[])
"""


async def fleet_seed(
    pool: Pool, server_ids: list[uuid.UUID], events_topic: str, partitions: list[int]
) -> FleetSeed:
    """Status, presence and the newest sample's headline values of these servers, in one query
    (the fleet hub's starting state for servers it begins to watch), and, in the same snapshot,
    how far the agent events of `partitions` are persisted: the presence read holds exactly the
    events up to there, so Kafka from the next offset on completes it (the seam of the history
    reads above)."""
    if not server_ids:
        return FleetSeed([], {})
    async with (
        connection(pool) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        persisted: dict[int, int | None] = {}
        for partition in partitions:
            persisted[partition] = await conn.fetchval(_LAST_OFFSET, events_topic, partition)
        rows = await conn.fetch(_FLEET_SEED, server_ids)
    return FleetSeed([dict(row) for row in rows], persisted)
