"""The backtest's reads: stored samples rebuilt as canonical MetricSamples (disks and interface
counters included), for `alerting.replay.backtest`."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from schemas.canonical import DiskSample, InterfaceSample, MetricSample

from .pool import Executor


async def count_samples(
    conn: Executor, server_ids: Sequence[uuid.UUID], start: datetime, end: datetime
) -> int:
    """How many samples of these servers are stored in [start, end)."""
    count = await conn.fetchval(
        "SELECT count(*) FROM metrics WHERE server_id = ANY($1) AND time >= $2 AND time < $3",
        list(server_ids),
        start,
        end,
    )
    return int(count or 0)


async def load_samples(
    db: Executor, server_ids: Sequence[uuid.UUID], start: datetime, end: datetime
) -> list[MetricSample]:
    """The stored samples of these servers in [start, end), disks and interfaces included (count
    them first: `count_samples`)."""
    servers = list(server_ids)
    rows = await db.fetch(
        """SELECT server_id, time, received_at, cpu_percent, memory_percent, memory_total_bytes,
                  memory_used_bytes, load1, load5, load15, uptime_seconds, cpu_cores
             FROM metrics WHERE server_id = ANY($1) AND time >= $2 AND time < $3
            ORDER BY server_id, time""",
        servers,
        start,
        end,
    )
    disks: dict[tuple[uuid.UUID, datetime], list[DiskSample]] = defaultdict(list)
    for d in await db.fetch(
        """SELECT server_id, time, mount, total_bytes, used_bytes, free_bytes, percent
             FROM metric_disks WHERE server_id = ANY($1) AND time >= $2 AND time < $3
            ORDER BY server_id, time, mount""",
        servers,
        start,
        end,
    ):
        disks[(d[0], d[1])].append(
            DiskSample(mount=d[2], total_bytes=d[3], used_bytes=d[4], free_bytes=d[5], percent=d[6])
        )
    interfaces: dict[tuple[uuid.UUID, datetime], list[InterfaceSample]] = defaultdict(list)
    for i in await db.fetch(
        """SELECT server_id, time, interface, bytes_sent, bytes_recv, packets_sent, packets_recv,
                  errors_in, errors_out
             FROM metric_interfaces WHERE server_id = ANY($1) AND time >= $2 AND time < $3
            ORDER BY server_id, time, interface""",
        servers,
        start,
        end,
    ):
        interfaces[(i[0], i[1])].append(
            InterfaceSample(
                interface=i[2],
                bytes_sent=i[3],
                bytes_recv=i[4],
                packets_sent=i[5],
                packets_recv=i[6],
                errors_in=i[7],
                errors_out=i[8],
            )
        )
    return [_sample(row, disks, interfaces) for row in rows]


def _sample(
    row: asyncpg.Record,
    disks: Mapping[tuple[uuid.UUID, datetime], list[DiskSample]],
    interfaces: Mapping[tuple[uuid.UUID, datetime], list[InterfaceSample]],
) -> MetricSample:
    key = (row[0], row[1])
    return MetricSample(
        server_id=row[0],
        time=row[1],
        received_at=row[2],
        cpu_percent=row[3],
        memory_percent=row[4],
        memory_total_bytes=row[5],
        memory_used_bytes=row[6],
        load1=row[7],
        load5=row[8],
        load15=row[9],
        uptime_seconds=row[10],
        cpu_cores=row[11],
        disks=tuple(disks.get(key, ())),
        interfaces=tuple(interfaces.get(key, ())),
    )
