"""Backfill: from a browser socket's auth frame to its last history frame, for one hour of raw
samples, 24 hours (1-minute buckets) and 30 days (1-hour buckets), with 1,000 servers of history
in the database (`metrics` at 5 s for the last hour, the 1-minute rollups for 24 hours and the
1-hour rollups for 30 days, written straight into the tables with `generate_series`; the measured
servers' raw samples carry 2 disks and 2 interfaces, as the reference agent's do).

Same-run limit: the same rows read by a plain SQL query of the same table and window, over one
connection, for the same servers. Medians over the measured servers and runs; the ratio is the
socket's time over the query's (above 1: slower than the database alone).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from websockets.asyncio.client import connect

from ..stagebench import row

WINDOWS = {  # name: (window seconds, resolution, rows table for the limit)
    "1 h raw": (3600, "raw", "metrics"),
    "24 h, 1-minute buckets": (86_400, "1m", "metric_rollups_1m"),
    "30 days, 1-hour buckets": (30 * 86_400, "1h", "metric_rollups_1h"),
}
METRICS = ("cpu_percent", "memory_percent", "memory_used_bytes", "load1", "load5", "load15")


def estimate(smoke: bool) -> float:
    return 40 if smoke else 420


def run(ctx: Any) -> dict[str, Any]:
    servers, measured, runs = (10, 3, 1) if ctx.smoke else (300, 5, 3) if ctx.reduced else (1000, 10, 3)
    stack = ctx.open_stack("backfill")
    try:
        fleet = stack.provision(servers, rules=False)
        ids = [s for _, s in fleet.agents]
        ctx.step(f"writing the history of {servers:,} servers")
        began = time.monotonic()
        rows = write_history(stack.dsn, ids, ids[:measured], datetime.now(UTC))
        ctx.step(f"{sum(rows.values()):,} rows in {time.monotonic() - began:.0f} s: {rows}")
        results: dict[str, Any] = {}
        for name, (window, resolution, table) in WINDOWS.items():
            socket_s: list[float] = []
            sql_s: list[float] = []
            frames: list[int] = []
            for _ in range(runs):
                for server in ids[:measured]:
                    seconds, count = asyncio.run(
                        history(stack.api_url, fleet.token, server, window, resolution)
                    )
                    socket_s.append(seconds)
                    frames.append(count)
                    sql_s.append(query(stack.dsn, table, server, window))
            results[name] = {
                "window_seconds": window,
                "resolution": resolution,
                "frames": statistics.median(frames),
                "socket_ms": round(statistics.median(socket_s) * 1000, 1),
                "socket_p95_ms": round(sorted(socket_s)[int(0.95 * (len(socket_s) - 1))] * 1000, 1),
                "sql_ms": round(statistics.median(sql_s) * 1000, 1),
                "samples": len(socket_s),
            }
            ctx.step(f"{name}: {results[name]}")
    finally:
        ctx.close_stack(stack)
    summary = [
        row(
            f"backfill, {name}: auth to last history frame ({r['frames']:,.0f} frames)",
            r["socket_ms"],
            "ms",
            r["sql_ms"],
            "plain SQL read of the same rows",
            higher_is_better=False,
            runs=r["samples"],
        )
        for name, r in results.items()
    ]
    return {
        "servers": servers,
        "measured_servers": measured,
        "runs": runs,
        "rows": rows,
        "windows": results,
        "summary": summary,
    }


def write_history(dsn: str, servers: list[str], detailed: list[str], now: datetime) -> dict[str, int]:
    """One hour of raw samples at 5 s, 24 h of 1-minute and 30 days of 1-hour rollups per server."""
    hour = now - timedelta(hours=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'metric_rollups_1m'"
            )
        }
        # Columns a rollup row has besides the original ones (0090: sum, last_time), filled alike.
        extra = "".join(f", {c}" for c in ("sum", "last_time") if c in columns)
        out = {}
        cur = conn.execute(
            """INSERT INTO metrics (server_id, time, cpu_percent, memory_percent, memory_total_bytes,
                                    memory_used_bytes, load1, load5, load15, uptime_seconds, cpu_cores)
               SELECT s::uuid, t, 10 + random() * 50, 40 + random() * 20, 16 << 30, 8 << 30,
                      random(), random(), random(), 86400, 4
               FROM unnest(%s::text[]) s, generate_series(%s::timestamptz, %s, INTERVAL '5 seconds') t""",
            (servers, hour, now),
        )
        out["metrics"] = cur.rowcount
        cur = conn.execute(
            """INSERT INTO metric_disks (server_id, time, mount, total_bytes, used_bytes, free_bytes, percent)
               SELECT s::uuid, t, m, 100 << 30, 40 << 30, 60 << 30, 40
               FROM unnest(%s::text[]) s, unnest(ARRAY['/', '/var']) m,
                    generate_series(%s::timestamptz, %s, INTERVAL '5 seconds') t""",
            (detailed, hour, now),
        )
        out["metric_disks"] = cur.rowcount
        cur = conn.execute(
            """INSERT INTO metric_interfaces (server_id, time, interface, bytes_sent, bytes_recv,
                                              packets_sent, packets_recv, errors_in, errors_out)
               SELECT s::uuid, t, i, e * 1000, e * 3000, e, e, 0, 0
               FROM unnest(%s::text[]) s, unnest(ARRAY['eth0', 'lo']) i,
                    generate_series(%s::timestamptz, %s, INTERVAL '5 seconds') t,
                    LATERAL (SELECT extract(epoch FROM t)::bigint AS e) x""",
            (detailed, hour, now),
        )
        out["metric_interfaces"] = cur.rowcount
        for table, span, unit, count in (
            ("metric_rollups_1m", timedelta(hours=24), "minute", 12),
            ("metric_rollups_1h", timedelta(days=30), "hour", 720),
        ):
            first = now - span
            extra_value = f", v * {count}" if "sum" in columns else ""
            if "last_time" in columns:
                extra_value += f", date_trunc('{unit}', b) + INTERVAL '1 {unit}' - INTERVAL '1 microsecond'"
            cur = conn.execute(
                f"""INSERT INTO {table} (server_id, metric, label, bucket, avg, min, max, last, count{extra})
                    SELECT s::uuid, m, '', date_trunc('{unit}', b), v, v / 2, v * 1.5, v,
                           {count}{extra_value}
                    FROM unnest(%s::text[]) s, unnest(%s::text[]) m,
                         generate_series(%s::timestamptz, %s, INTERVAL '1 {unit}') b,
                         LATERAL (SELECT 10 + random() * 50 AS v) r""",
                (servers, list(METRICS), first, now),
            )
            out[table] = cur.rowcount
        conn.execute("ANALYZE")
    return out


async def history(api_url: str, token: str, server: str, window: int, resolution: str) -> tuple[float, int]:
    """Seconds from sending the auth frame to the last history frame, and the history frames."""
    url = f"{api_url.replace('http://', 'ws://')}/api/v1/ws/metrics/{server}"
    auth = {"type": "auth", "token": token, "window_seconds": window, "resolution": resolution}
    async with connect(url, ping_interval=None, max_size=1 << 24) as ws:
        began = time.perf_counter()
        await ws.send(orjson.dumps(auth).decode())
        last, count = began, 0
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "metrics" and frame.get("history"):
                last, count = time.perf_counter(), count + 1
            elif kind == "history_end":
                return last - began, count
            elif kind == "error":
                raise RuntimeError(f"history of {server}: {frame}")
    raise RuntimeError(f"history of {server}: the socket closed before history_end")


def query(dsn: str, table: str, server: str, window: int) -> float:
    """The limit: the window's rows of the same table read over a plain connection."""
    column = "time" if table == "metrics" else "bucket"
    since = datetime.now(UTC) - timedelta(seconds=window)
    with psycopg.connect(dsn) as conn:
        began = time.perf_counter()
        conn.execute(
            f"SELECT * FROM {table} WHERE server_id = %s AND {column} >= %s ORDER BY {column}",
            (server, since),
        ).fetchall()
        return time.perf_counter() - began
