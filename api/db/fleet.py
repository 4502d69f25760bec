"""The fleet summary: every server a user can see, with its newest values, in one query.

One statement, one plan: the visible servers (owner or share), then per server a few index
lookups joined laterally (the newest sample by the `metrics` primary key, that sample's fullest
disk, the firing alerts by their partial index, the 1-minute rollups of the sparkline). No
per-server round trip; `bench/fleet_summary.py` measures it with 1,000 servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from .pool import Executor

SPARK_METRICS = ("cpu_percent", "memory_percent")

_FLEET_SQL = """
WITH visible AS (
    SELECT s.id, s.name, s.tags, s.status, s.last_seen,
           CASE WHEN s.owner_id = $1 THEN 'owner' ELSE sh.role END AS role
    FROM servers s
    LEFT JOIN server_shares sh ON sh.server_id = s.id AND sh.user_id = $1
    WHERE (s.owner_id = $1 OR sh.user_id IS NOT NULL)
      AND ($2::text[] IS NULL OR s.tags @> $2::text[])
      AND ($3::text[] IS NULL OR s.status = ANY($3::text[]))
    ORDER BY s.name, s.id
    LIMIT $4
)
SELECT v.id, v.name, v.tags, v.status, v.last_seen, v.role,
       m.time AS sample_time, m.cpu_percent, m.memory_percent,
       d.mount AS disk_mount, d.percent AS disk_percent,
       COALESCE(a.firing, 0) AS firing, a.max_severity,
       sp.cpu AS spark_cpu, sp.mem AS spark_mem
FROM visible v
LEFT JOIN LATERAL (
    SELECT time, cpu_percent, memory_percent FROM metrics
    WHERE server_id = v.id ORDER BY time DESC LIMIT 1
) m ON true
LEFT JOIN LATERAL (
    SELECT mount, percent FROM metric_disks
    WHERE server_id = v.id AND time = m.time ORDER BY percent DESC, mount LIMIT 1
) d ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS firing,
           (ARRAY['info', 'warning', 'critical'])[max(CASE severity WHEN 'critical' THEN 3
                                                    WHEN 'warning' THEN 2 ELSE 1 END)] AS max_severity
    FROM alerts WHERE server_id = v.id AND state = 'firing'
) a ON true
LEFT JOIN LATERAL (
    SELECT array_agg(r.cpu ORDER BY g.bucket) AS cpu, array_agg(r.mem ORDER BY g.bucket) AS mem
    FROM generate_series($5::timestamptz, $5::timestamptz + ($6 - 1) * INTERVAL '1 minute',
                         INTERVAL '1 minute') AS g(bucket)
    LEFT JOIN (
        SELECT bucket,
               max(avg) FILTER (WHERE metric = 'cpu_percent') AS cpu,
               max(avg) FILTER (WHERE metric = 'memory_percent') AS mem
        FROM metric_rollups_1m
        WHERE server_id = v.id AND metric = ANY($7::text[]) AND label = ''
          AND bucket >= $5::timestamptz AND bucket < $5::timestamptz + $6 * INTERVAL '1 minute'
        GROUP BY bucket
    ) r ON r.bucket = g.bucket
) sp ON true
ORDER BY v.name, v.id
"""


async def fleet(
    conn: Executor,
    user_id: uuid.UUID,
    *,
    tags: Sequence[str] | None,
    statuses: Sequence[str] | None,
    limit: int,
    spark_start: datetime,
    spark_points: int,
) -> list[asyncpg.Record]:
    """Up to `limit` visible servers (by name), each with its newest sample, fullest disk, firing
    alerts and `spark_points` 1-minute averages of CPU and memory from `spark_start` (None where
    a minute has no data)."""
    return await conn.fetch(
        _FLEET_SQL,
        user_id,
        list(tags) if tags else None,
        list(statuses) if statuses else None,
        limit,
        spark_start,
        spark_points,
        list(SPARK_METRICS),
    )


async def visible_server_ids(conn: Executor, user_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    """The ids of the servers the user can see (the fleet socket's subscription), by name."""
    rows = await conn.fetch(
        """
        SELECT s.id FROM servers s
        LEFT JOIN server_shares sh ON sh.server_id = s.id AND sh.user_id = $1
        WHERE s.owner_id = $1 OR sh.user_id IS NOT NULL
        ORDER BY s.name, s.id LIMIT $2
        """,
        user_id,
        limit,
    )
    return [row["id"] for row in rows]
