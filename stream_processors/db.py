"""All SQL of the stream processors, and the database pool they share.

`Database` is a faust (mode) service owning one psycopg pool, opened when the app starts and closed
when it stops. Every write runs in `Database.transaction()`, which translates psycopg's errors
once, by SQLSTATE class: `DatabaseUnavailable` for what passes (connection, transaction rollback,
resources, locks, operator intervention, I/O: retry the same batch) and `DatabaseRejected` for
everything else (the data, or the statement, is refused: retrying the same rows fails again).
Unknown errors count as rejected on purpose: a rejected batch is split and its failing message
dead-lettered only if a reference message can still be written (`probe.py`), so a systemic
error stops persistence instead of dead-lettering, while an error wrongly taken for a passing
one would retry one message forever and stall every partition behind it.

Bulk rows go in with binary COPY into per-connection staging tables, then one
`INSERT ... SELECT ... ON CONFLICT` on each table's natural key, so a replayed batch adds no row.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import mode
import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from schemas.canonical import AgentEvent, CommandResult, LogRecord, MetricSample

from .errors import DatabaseRejected, DatabaseUnavailable
from .settings import ProcessorSettings

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[Any]

RAW_TABLES = ("metrics", "metric_disks", "metric_interfaces", "logs", "agent_events")
ROLLUP_1M_TABLE = "metric_rollups_1m"
ROLLUP_1H_TABLE = "metric_rollups_1h"


class Database(mode.Service):
    """The processors' connection pool, as a service of the faust app."""

    def __init__(self, settings: ProcessorSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            settings.common.database_url,
            open=False,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(settings.db_connect_timeout_seconds)),
                "application_name": settings.app_id,  # tells the workers apart in pg_stat_activity
            },
            # A connection broken by an outage is detected on checkout and replaced.
            check=AsyncConnectionPool.check_connection,
            configure=prepare_connection,
            reconnect_timeout=0,  # never give up reconnecting: an outage is waited out
            name="fleetpulse-processors",
        )

    async def on_start(self) -> None:
        # wait=False: a worker started while the database is down runs and retries, no crash loop.
        await self.pool.open(wait=False)

    async def on_stop(self) -> None:
        await self.pool.close(timeout=5.0)

    @asynccontextmanager
    async def transaction(self, *, rollback: bool = False) -> AsyncIterator[Conn]:
        """One transaction on a pooled connection; psycopg errors translated here, once.

        `rollback=True` rolls it back at the end even when nothing failed (the write probe)."""
        try:
            timeout = self._settings.db_connect_timeout_seconds
            async with (
                self.pool.connection(timeout=timeout) as conn,
                conn.transaction(force_rollback=rollback),
            ):
                yield conn
        except psycopg.Error as exc:
            if passing(exc):
                # Connection lost, pool timeout, serialization failure, deadlock, admin shutdown:
                # the batch is retried unchanged, never skipped.
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            raise DatabaseRejected(f"{type(exc).__name__}: {exc}") from exc


# SQLSTATE classes of errors that pass: 08 connection, 40 transaction rollback (serialization,
# deadlock), 53 insufficient resources, 55 object not in prerequisite state (lock not available),
# 57 operator intervention (admin shutdown, query canceled), 58 system error (I/O); and 25006,
# a read-only transaction (a failover in progress).
_PASSING_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


def passing(exc: psycopg.Error) -> bool:
    """Whether the same transaction may succeed later (see the module's docstring)."""
    state = exc.sqlstate
    if state is None:
        # Raised by the client, not the server: a lost connection or a pool timeout pass; a value
        # psycopg cannot send (a ProgrammingError, a DataError) does not.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state[:2] in _PASSING_CLASSES or state == pg_errors.ReadOnlySqlTransaction.sqlstate


# --- staging -------------------------------------------------------------------------------------

_STAGING = {
    "stage_metrics": "metrics",
    "stage_disks": "metric_disks",
    "stage_interfaces": "metric_interfaces",
    "stage_logs": "logs",
    "stage_agent_events": "agent_events",
    "stage_command_results": "command_history",
}


async def prepare_connection(conn: Conn) -> None:
    """Create the temporary staging tables of a new connection (ON COMMIT DELETE ROWS empties
    them after every transaction). Runs in autocommit, outside any batch, so a rolled-back batch
    never takes them away."""
    for stage, table in _STAGING.items():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )


async def _copy(
    conn: Conn, stage: str, columns: Sequence[tuple[str, str]], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    sql = f"COPY {stage} ({names}) FROM STDIN (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types([pg_type for _, pg_type in columns])
        for row in rows:
            await copy.write_row(row)


_METRIC_COLUMNS = (
    ("server_id", "uuid"),
    ("time", "timestamptz"),
    ("cpu_percent", "float8"),
    ("memory_percent", "float8"),
    ("memory_total_bytes", "int8"),
    ("memory_used_bytes", "int8"),
    ("load1", "float8"),
    ("load5", "float8"),
    ("load15", "float8"),
    ("uptime_seconds", "int8"),
    ("cpu_cores", "int4"),
    ("received_at", "timestamptz"),
)
_DISK_COLUMNS = (
    ("server_id", "uuid"),
    ("time", "timestamptz"),
    ("mount", "text"),
    ("total_bytes", "int8"),
    ("used_bytes", "int8"),
    ("free_bytes", "int8"),
    ("percent", "float8"),
)
_INTERFACE_COLUMNS = (
    ("server_id", "uuid"),
    ("time", "timestamptz"),
    ("interface", "text"),
    ("bytes_sent", "int8"),
    ("bytes_recv", "int8"),
    ("packets_sent", "int8"),
    ("packets_recv", "int8"),
    ("errors_in", "int8"),
    ("errors_out", "int8"),
)
_LOG_COLUMNS = (
    ("server_id", "uuid"),
    ("time", "timestamptz"),
    ("entry_id", "uuid"),
    ("level", "text"),
    ("source", "text"),
    ("message", "text"),
    ("received_at", "timestamptz"),
)
_EVENT_COLUMNS = (
    ("server_id", "uuid"),
    ("time", "timestamptz"),
    ("event_id", "uuid"),
    ("event", "text"),
    ("connection_id", "uuid"),
    ("ingest_id", "text"),
    ("dialect", "text"),
    ("reason", "text"),
    ("remote", "text"),
    ("superseded", "bool"),
)
_RESULT_COLUMNS = (
    ("command_id", "uuid"),
    ("server_id", "uuid"),
    ("success", "bool"),
    ("output", "text"),
    ("error", "text"),
    ("exit_code", "int4"),
    ("duration_ms", "int8"),
    ("message", "text"),
    ("logs", "text[]"),
    ("finished_at", "timestamptz"),
)


def _cols(columns: Sequence[tuple[str, str]], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{name}" for name, _ in columns)


# --- the batch write -----------------------------------------------------------------------------


async def write_batch(
    conn: Conn,
    payloads: Sequence[MetricSample | LogRecord | AgentEvent | CommandResult],
    highest: Mapping[tuple[str, int], int],
    *,
    rollup_horizon: datetime,
    stale_after: timedelta,
) -> None:
    """Write one batch inside the caller's transaction, idempotently (on a connection set up by
    `prepare_connection`, as the pool's connections are).

    `payloads` are in Kafka order (per partition); `highest` is the highest offset per
    (topic, partition) the batch covers, recorded in `persisted_offsets` in this same transaction.
    Rollup buckets older than `rollup_horizon` (the raw retention) are not recomputed: their raw
    rows may be gone.
    """
    metrics = [p for p in payloads if isinstance(p, MetricSample)]
    logs = [p for p in payloads if isinstance(p, LogRecord)]
    events = [p for p in payloads if isinstance(p, AgentEvent)]
    results = [p for p in payloads if isinstance(p, CommandResult)]

    # All of one server's messages sit in one partition, so two workers only meet on a server
    # during a rebalance: the per-server locks (taken in a fixed order) serialise them then.
    server_ids = sorted({str(p.server_id) for p in payloads})
    if server_ids:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(s, 20)) "
            "FROM (SELECT s FROM unnest(%s::text[]) AS s ORDER BY s) AS ordered",
            (server_ids,),
        )
    if metrics:
        await _write_metrics(conn, metrics, rollup_horizon, stale_after)
    if logs:
        await _copy(
            conn,
            "stage_logs",
            _LOG_COLUMNS,
            [(r.server_id, r.time, r.entry_id, r.level, r.source, r.message, r.received_at) for r in logs],
        )
        await conn.execute(
            f"INSERT INTO logs ({_cols(_LOG_COLUMNS)}) SELECT {_cols(_LOG_COLUMNS)} FROM stage_logs "
            "ON CONFLICT DO NOTHING"
        )
    if events:
        await _write_events(conn, events, stale_after)
    if results:
        await _write_results(conn, results)
    if highest:
        keys = list(highest)
        await conn.execute(
            """INSERT INTO persisted_offsets (topic, partition, last_offset, updated_at)
               SELECT t, p, o, now() FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS u(t, p, o)
               ON CONFLICT (topic, partition) DO UPDATE
               SET last_offset = GREATEST(persisted_offsets.last_offset, EXCLUDED.last_offset),
                   updated_at = now()""",
            ([k[0] for k in keys], [k[1] for k in keys], [highest[k] for k in keys]),
        )


def metric_row(m: MetricSample) -> tuple[object, ...]:
    """A sample as a row of `metrics`, in the order of `_METRIC_COLUMNS`."""
    return (
        m.server_id,
        m.time,
        m.cpu_percent,
        m.memory_percent,
        m.memory_total_bytes,
        m.memory_used_bytes,
        m.load1,
        m.load5,
        m.load15,
        m.uptime_seconds,
        m.cpu_cores,
        m.received_at,
    )


def disk_rows(metrics: Sequence[MetricSample]) -> list[tuple[object, ...]]:
    """The samples' disks as rows of `metric_disks`, in the order of `_DISK_COLUMNS`."""
    return [
        (m.server_id, m.time, d.mount, d.total_bytes, d.used_bytes, d.free_bytes, d.percent)
        for m in metrics
        for d in m.disks
    ]


def interface_rows(metrics: Sequence[MetricSample]) -> list[tuple[object, ...]]:
    """The samples' interfaces as rows of `metric_interfaces`, in the order of `_INTERFACE_COLUMNS`."""
    return [
        (
            m.server_id,
            m.time,
            i.interface,
            i.bytes_sent,
            i.bytes_recv,
            i.packets_sent,
            i.packets_recv,
            i.errors_in,
            i.errors_out,
        )
        for m in metrics
        for i in m.interfaces
    ]


async def _write_metrics(
    conn: Conn, metrics: Sequence[MetricSample], rollup_horizon: datetime, stale_after: timedelta
) -> None:
    await _copy(conn, "stage_metrics", _METRIC_COLUMNS, [metric_row(m) for m in metrics])
    await _copy(conn, "stage_disks", _DISK_COLUMNS, disk_rows(metrics))
    await _copy(conn, "stage_interfaces", _INTERFACE_COLUMNS, interface_rows(metrics))
    # One statement: the raw rows (idempotent on the natural key) and both rollup tiers merged
    # from the rows the inserts report as new; it answers the interface samples whose rate a
    # late sample changed, which are recomputed from the raw rows (below).
    cur = await conn.execute(_WRITE_METRICS_SQL, {"horizon": rollup_horizon})
    changed = await cur.fetchall()
    if changed:
        await _recompute_rates(conn, changed)
    # Hearing from a server is the freshest sign of life; replayed old samples never move it back.
    await conn.execute(
        """UPDATE servers s
           SET last_seen = GREATEST(COALESCE(s.last_seen, '-infinity'), x.seen),
               status = CASE WHEN s.status IN ('stale', 'unknown') AND x.seen > now() - %s::interval
                             THEN 'online' ELSE s.status END
           FROM (SELECT server_id, max(received_at) AS seen FROM stage_metrics GROUP BY server_id) x
           WHERE s.id = x.server_id""",
        (stale_after,),
    )
    await _write_processes(conn, metrics)


def newest_processes(metrics: Sequence[MetricSample]) -> list[tuple[object, ...]]:
    """Per server, the newest sample that carried processes, as a `server_processes` row
    (server_id, time, processes as JSON text)."""
    newest: dict[object, MetricSample] = {}
    for m in metrics:
        if m.processes:
            held = newest.get(m.server_id)
            if held is None or m.time > held.time:
                newest[m.server_id] = m
    return [(m.server_id, m.time, _processes_json(m)) for m in newest.values()]


def _processes_json(m: MetricSample) -> str:
    # Names are storable text (schemas.bounds: no NUL, which jsonb refuses), so this always fits.
    return orjson.dumps([p.model_dump(mode="json") for p in m.processes]).decode()


async def _write_processes(conn: Conn, metrics: Sequence[MetricSample]) -> None:
    """Keep each server's newest top processes: one row per server, replaced only by a newer
    sample (a replay or a late older sample changes nothing)."""
    rows = newest_processes(metrics)
    if not rows:
        return
    await conn.execute(
        """INSERT INTO server_processes AS p (server_id, time, processes, updated_at)
           SELECT s, t, j::jsonb, now() FROM unnest(%s::uuid[], %s::timestamptz[], %s::text[]) AS u(s, t, j)
           ON CONFLICT (server_id) DO UPDATE
           SET time = EXCLUDED.time, processes = EXCLUDED.processes, updated_at = now()
           WHERE p.time < EXCLUDED.time""",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    )


# --- rollups ---------------------------------------------------------------------------------
#
# A rollup row holds, per (server, metric, label, bucket): count, sum (avg = sum / count), min,
# max, and the value of the newest sample with its time (`last`, `last_time`). Every one of these
# merges: two sets of samples of one bucket combine into the row of their union. So a batch
# updates each tier with one upsert of its *new* samples, the rows its raw inserts report
# (`ON CONFLICT DO NOTHING RETURNING`: a replayed sample is not new and adds nothing), and a late
# sample older than the bucket's `last_time` leaves `last` alone.
#
# Network rates are the exception: the rate of an interface sample is the counter difference to
# the previous sample of the interface over the time between them (a counter that went down is a
# reset: no rate). A new sample's own rate merges like any value (its predecessor is the newest
# row before it, stored or new). But a late sample also changes the rate of the stored sample
# that follows it, and a changed value cannot be taken out of a min or a max: those few buckets
# are recomputed from the raw rows (`_recompute_rates`), their hours from the minute rows.

_NET = ("net_tx_bytes_per_s", "net_rx_bytes_per_s")

_MERGE = """
ON CONFLICT (server_id, metric, label, bucket) DO UPDATE
SET sum = r.sum + EXCLUDED.sum, count = r.count + EXCLUDED.count,
    avg = (r.sum + EXCLUDED.sum) / (r.count + EXCLUDED.count),
    min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max),
    -- by sample time: a late sample older than the bucket's last one does not replace it
    last = CASE WHEN EXCLUDED.last_time > r.last_time THEN EXCLUDED.last ELSE r.last END,
    last_time = GREATEST(r.last_time, EXCLUDED.last_time)"""

# The new samples' partial aggregates per minute (`batch_1m`), merged into the minute rows and,
# grouped again by hour (partial aggregates combine like the rows themselves), into the hours.
_BATCH_1M = """
batch_1m AS (
    SELECT server_id, metric, label, time_bucket(INTERVAL '1 minute', time) AS bucket,
           sum(value) AS sum, min(value) AS min, max(value) AS max, last(value, time) AS last,
           max(time) AS last_time, count(*) AS count
    FROM fresh GROUP BY 1, 2, 3, 4
), minutes AS (
    INSERT INTO metric_rollups_1m AS r
        (server_id, metric, label, bucket, avg, sum, min, max, last, last_time, count)
    SELECT server_id, metric, label, bucket, sum / count, sum, min, max, last, last_time, count
    FROM batch_1m
    {merge}
), hours AS (
    INSERT INTO metric_rollups_1h AS r
        (server_id, metric, label, bucket, avg, sum, min, max, last, last_time, count)
    SELECT server_id, metric, label, time_bucket(INTERVAL '1 hour', bucket),
           sum(sum) / sum(count), sum(sum), min(min), max(max), last(last, last_time), max(last_time),
           sum(count)
    FROM batch_1m GROUP BY 1, 2, 3, 4
    {merge}
)"""

_WRITE_METRICS_SQL = f"""
WITH new_m AS (
    INSERT INTO metrics ({_cols(_METRIC_COLUMNS)}) SELECT {_cols(_METRIC_COLUMNS)} FROM stage_metrics
    ON CONFLICT DO NOTHING
    RETURNING server_id, time, cpu_percent, memory_percent, memory_used_bytes, load1, load5, load15
), new_d AS (
    INSERT INTO metric_disks ({_cols(_DISK_COLUMNS)}) SELECT {_cols(_DISK_COLUMNS)} FROM stage_disks
    ON CONFLICT DO NOTHING
    RETURNING server_id, time, mount, percent, used_bytes
), new_i AS (
    INSERT INTO metric_interfaces ({_cols(_INTERFACE_COLUMNS)})
    SELECT {_cols(_INTERFACE_COLUMNS)} FROM stage_interfaces
    ON CONFLICT DO NOTHING
    RETURNING server_id, time, interface, bytes_sent, bytes_recv
), span AS (
    SELECT server_id, interface, min(time) AS lo, max(time) AS hi FROM new_i GROUP BY 1, 2
), chain AS (
    -- Per interface, the new rows among the stored ones next to them (this statement's snapshot
    -- holds the stored rows only): the newest before the first new row, those between the first
    -- and the last (the new ones are late), and the oldest after the last.
    SELECT b.server_id, b.interface, b.time, b.bytes_sent, b.bytes_recv, false AS new
    FROM span s CROSS JOIN LATERAL (
        SELECT p.server_id, p.interface, p.time, p.bytes_sent, p.bytes_recv FROM metric_interfaces p
        WHERE p.server_id = s.server_id AND p.interface = s.interface AND p.time < s.lo
        ORDER BY p.time DESC LIMIT 1
    ) AS b
    UNION ALL
    SELECT p.server_id, p.interface, p.time, p.bytes_sent, p.bytes_recv, false
    FROM span s JOIN metric_interfaces p
      ON p.server_id = s.server_id AND p.interface = s.interface AND p.time > s.lo AND p.time < s.hi
    UNION ALL
    SELECT a.server_id, a.interface, a.time, a.bytes_sent, a.bytes_recv, false
    FROM span s CROSS JOIN LATERAL (
        SELECT p.server_id, p.interface, p.time, p.bytes_sent, p.bytes_recv FROM metric_interfaces p
        WHERE p.server_id = s.server_id AND p.interface = s.interface AND p.time > s.hi
        ORDER BY p.time LIMIT 1
    ) AS a
    UNION ALL
    SELECT server_id, interface, time, bytes_sent, bytes_recv, true FROM new_i
), steps AS (
    SELECT c.*, lag(c.time) OVER w AS p_time, lag(c.bytes_sent) OVER w AS p_sent,
           lag(c.bytes_recv) OVER w AS p_recv, lag(c.new) OVER w AS p_new
    FROM chain c WINDOW w AS (PARTITION BY c.server_id, c.interface ORDER BY c.time)
), fresh AS (
    SELECT * FROM (
        SELECT m.server_id, m.time, x.metric, ''::text AS label, x.value
        FROM new_m m CROSS JOIN LATERAL (VALUES ('cpu_percent', m.cpu_percent),
                                               ('memory_percent', m.memory_percent),
                                               ('memory_used_bytes', m.memory_used_bytes::double precision),
                                               ('load1', m.load1), ('load5', m.load5), ('load15', m.load15)
                                       ) AS x(metric, value)
        WHERE x.value IS NOT NULL
        UNION ALL
        SELECT d.server_id, d.time, x.metric, d.mount, x.value
        FROM new_d d CROSS JOIN LATERAL (VALUES ('disk_percent', d.percent),
                                               ('disk_used_bytes', d.used_bytes::double precision)
                                       ) AS x(metric, value)
        UNION ALL
        SELECT t.server_id, t.time, x.metric, t.interface, x.value
        FROM steps t
        CROSS JOIN LATERAL (SELECT extract(epoch FROM t.time - t.p_time)::double precision AS secs) AS dt
        CROSS JOIN LATERAL (VALUES
            ('{_NET[0]}', CASE WHEN t.bytes_sent >= t.p_sent THEN (t.bytes_sent - t.p_sent) / dt.secs END),
            ('{_NET[1]}', CASE WHEN t.bytes_recv >= t.p_recv THEN (t.bytes_recv - t.p_recv) / dt.secs END)
        ) AS x(metric, value)
        WHERE t.new AND t.p_time IS NOT NULL AND x.value IS NOT NULL
    ) AS v
    -- Buckets past the raw retention are left alone: their raw rows may be gone.
    WHERE v.time >= %(horizon)s
),
{_BATCH_1M.format(merge=_MERGE)}
-- The stored interface samples whose predecessor is now a new (late) sample: their rate changed.
SELECT server_id, interface, time FROM steps
WHERE NOT new AND p_new AND time >= %(horizon)s
"""

# The distinct (server_id, label, bucket) of the changed samples (server, interface, time).
_BUCKETS = """SELECT DISTINCT s AS server_id, l AS label, time_bucket(INTERVAL '{width}', t) AS bucket
    FROM unnest(%(servers)s::uuid[], %(labels)s::text[], %(times)s::timestamptz[]) AS u(s, l, t)"""

# The network rates of the given (server, interface, minute) buckets, from the raw rows.
_RATES_1M_SQL = f"""
INSERT INTO metric_rollups_1m (server_id, metric, label, bucket, avg, sum, min, max, last, last_time, count)
SELECT i.server_id, x.metric, i.interface, t.bucket, sum(x.value) / count(*), sum(x.value),
       min(x.value), max(x.value), last(x.value, i.time), max(i.time), count(*)
FROM ({_BUCKETS.format(width="1 minute")}) AS t
JOIN metric_interfaces i ON i.server_id = t.server_id AND i.interface = t.label
                        AND i.time >= t.bucket AND i.time < t.bucket + INTERVAL '1 minute'
CROSS JOIN LATERAL (
    SELECT p.time AS p_time, p.bytes_sent AS p_sent, p.bytes_recv AS p_recv
    FROM metric_interfaces p
    WHERE p.server_id = i.server_id AND p.interface = i.interface AND p.time < i.time
    ORDER BY p.time DESC LIMIT 1
) AS prev
CROSS JOIN LATERAL (SELECT extract(epoch FROM i.time - prev.p_time)::double precision AS secs) AS dt
CROSS JOIN LATERAL (VALUES
    ('{_NET[0]}', CASE WHEN i.bytes_sent >= prev.p_sent THEN (i.bytes_sent - prev.p_sent) / dt.secs END),
    ('{_NET[1]}', CASE WHEN i.bytes_recv >= prev.p_recv THEN (i.bytes_recv - prev.p_recv) / dt.secs END)
) AS x(metric, value)
WHERE x.value IS NOT NULL
GROUP BY 1, 2, 3, 4
"""

# The network rates of the given (server, interface, hour) buckets, from their minute rows
# (exact: counts and sums add, min of mins, max of maxes, last by time).
_RATES_1H_SQL = f"""
INSERT INTO metric_rollups_1h (server_id, metric, label, bucket, avg, sum, min, max, last, last_time, count)
SELECT r.server_id, r.metric, r.label, t.bucket, sum(r.sum) / sum(r.count), sum(r.sum), min(r.min),
       max(r.max), last(r.last, r.last_time), max(r.last_time), sum(r.count)
FROM ({_BUCKETS.format(width="1 hour")}) AS t
JOIN metric_rollups_1m r ON r.server_id = t.server_id AND r.label = t.label
                        AND r.metric IN ('{_NET[0]}', '{_NET[1]}')
                        AND r.bucket >= t.bucket AND r.bucket < t.bucket + INTERVAL '1 hour'
GROUP BY 1, 2, 3, 4
"""

_DELETE_RATES_SQL = """
DELETE FROM {table} r USING ({buckets}) AS t
WHERE r.server_id = t.server_id AND r.label = t.label AND r.bucket = t.bucket
  AND r.metric IN ('{tx}', '{rx}')
"""


async def _recompute_rates(conn: Conn, changed: Sequence[tuple[Any, ...]]) -> None:
    """Rebuild the network-rate rows of the buckets holding `changed` (server, interface, time):
    stored samples whose rate a late sample changed. Deleted first, so a rate that disappears
    (the late sample reveals a reset) leaves no row behind; the minutes before their hours."""
    params = {
        "servers": [row[0] for row in changed],
        "labels": [row[1] for row in changed],
        "times": [row[2] for row in changed],
    }
    for table, width, sql in (
        ("metric_rollups_1m", "1 minute", _RATES_1M_SQL),
        ("metric_rollups_1h", "1 hour", _RATES_1H_SQL),
    ):
        buckets = _BUCKETS.format(width=width)
        await conn.execute(
            _DELETE_RATES_SQL.format(table=table, buckets=buckets, tx=_NET[0], rx=_NET[1]), params
        )
        await conn.execute(sql, params)


async def _write_events(conn: Conn, events: Sequence[AgentEvent], stale_after: timedelta) -> None:
    await _copy(
        conn,
        "stage_agent_events",
        _EVENT_COLUMNS,
        [
            (
                e.server_id,
                e.time,
                e.event_id,
                e.event,
                e.connection_id,
                e.ingest_id,
                e.dialect,
                e.reason,
                e.remote,
                e.superseded,
            )
            for e in events
        ],
    )
    await conn.execute(
        f"INSERT INTO agent_events ({_cols(_EVENT_COLUMNS)}) SELECT {_cols(_EVENT_COLUMNS)} "
        "FROM stage_agent_events ON CONFLICT DO NOTHING"
    )
    # Presence, in Kafka order. A connect always takes over if it is not older than what is
    # known; a disconnect counts only for the connection that currently speaks for the server,
    # and a superseded socket's disconnect (a newer one took over) never counts at all.
    presence = [
        (e.server_id, e.connection_id, e.event == "connected", e.time)
        for e in events
        if e.event == "connected" or (e.event == "disconnected" and not e.superseded)
    ]
    if presence:
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO server_presence AS p (server_id, connection_id, connected, event_time)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (server_id) DO UPDATE
                   SET connection_id = EXCLUDED.connection_id, connected = EXCLUDED.connected,
                       event_time = EXCLUDED.event_time
                   WHERE p.event_time <= EXCLUDED.event_time
                     AND (EXCLUDED.connected OR p.connection_id IS NULL
                          OR EXCLUDED.connection_id IS NULL OR p.connection_id = EXCLUDED.connection_id)""",
                presence,
            )
    await conn.execute(
        """UPDATE servers s
           SET last_seen = GREATEST(COALESCE(s.last_seen, '-infinity'), p.event_time),
               status = CASE
                   WHEN NOT p.connected THEN 'offline'
                   WHEN GREATEST(COALESCE(s.last_seen, '-infinity'), p.event_time) < now() - %s::interval
                       THEN 'stale'
                   ELSE 'online' END
           FROM server_presence p
           WHERE p.server_id = s.id AND s.id = ANY(%s::uuid[])""",
        (stale_after, sorted({e.server_id for e in events})),
    )


async def _write_results(conn: Conn, results: Sequence[CommandResult]) -> None:
    # One row per command: of several results for one command in a batch, the last one wins
    # (ON CONFLICT DO UPDATE may touch a row only once per statement).
    latest = {r.command_id: r for r in results}
    await _copy(
        conn,
        "stage_command_results",
        _RESULT_COLUMNS,
        [
            (
                r.command_id,
                r.server_id,
                r.success,
                r.output,
                r.error,
                r.exit_code,
                r.duration_ms,
                r.message,
                None if r.logs is None else list(r.logs),
                r.finished_at,
            )
            for r in latest.values()
        ],
    )
    await conn.execute(
        f"""INSERT INTO command_history ({_cols(_RESULT_COLUMNS)}, result_received_at)
            SELECT {_cols(_RESULT_COLUMNS)}, now() FROM stage_command_results
            ON CONFLICT (command_id) DO UPDATE
            SET success = EXCLUDED.success, output = EXCLUDED.output, error = EXCLUDED.error,
                exit_code = EXCLUDED.exit_code, duration_ms = EXCLUDED.duration_ms,
                message = EXCLUDED.message, logs = EXCLUDED.logs, finished_at = EXCLUDED.finished_at,
                result_received_at = COALESCE(command_history.result_received_at,
                                              EXCLUDED.result_received_at)"""
    )


# --- retention and presence sweeps ---------------------------------------------------------------


async def drop_old_chunks(conn: Conn, table: str, older_than: timedelta) -> list[str]:
    """Drop the chunks of `table` whose whole time range is older than `older_than` ago."""
    cur = await conn.execute(
        "SELECT c::text FROM drop_chunks(%s::regclass, older_than => %s::interval) AS c",
        (table, older_than),
    )
    return [row[0] for row in await cur.fetchall()]


async def mark_stale(conn: Conn, stale_after: timedelta) -> int:
    """Mark 'stale' the online servers not heard from for `stale_after`; returns how many."""
    cur = await conn.execute(
        "UPDATE servers SET status = 'stale' WHERE status = 'online' AND last_seen < now() - %s::interval",
        (stale_after,),
    )
    return cur.rowcount
