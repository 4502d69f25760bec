"""Rollups equal SQL over the raw rows, also after late and replayed samples and counter resets."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from schemas.canonical import MetricSample, utcnow
from stream_processors import db
from tests.support.persist import sample

Conn = psycopg.AsyncConnection[tuple[object, ...]]

# Independent of the processor's SQL: window functions over every raw row of the server.
EXPECTED_1M = """
WITH values AS (
    SELECT server_id, time, 'cpu_percent' AS metric, '' AS label, cpu_percent AS value FROM metrics
    UNION ALL SELECT server_id, time, 'memory_percent', '', memory_percent FROM metrics
    UNION ALL SELECT server_id, time, 'memory_used_bytes', '', memory_used_bytes FROM metrics
    UNION ALL SELECT server_id, time, 'load1', '', load1 FROM metrics WHERE load1 IS NOT NULL
    UNION ALL SELECT server_id, time, 'disk_percent', mount, percent FROM metric_disks
    UNION ALL SELECT server_id, time, 'disk_used_bytes', mount, used_bytes FROM metric_disks
    UNION ALL
    SELECT server_id, time, metric, interface, value FROM (
        SELECT server_id, time, interface,
               bytes_sent - lag(bytes_sent) OVER w AS d_sent,
               bytes_recv - lag(bytes_recv) OVER w AS d_recv,
               extract(epoch FROM time - lag(time) OVER w)::double precision AS secs
        FROM metric_interfaces WINDOW w AS (PARTITION BY server_id, interface ORDER BY time)
    ) d CROSS JOIN LATERAL (
        VALUES ('net_tx_bytes_per_s', CASE WHEN d_sent >= 0 THEN d_sent / secs END),
               ('net_rx_bytes_per_s', CASE WHEN d_recv >= 0 THEN d_recv / secs END)
    ) x(metric, value)
    WHERE value IS NOT NULL
)
SELECT metric, label, time_bucket('1 minute', time) AS bucket, avg(value), min(value), max(value),
       (array_agg(value ORDER BY time DESC))[1], count(*)
FROM values WHERE server_id = %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
EXPECTED_1H = EXPECTED_1M.replace("'1 minute'", "'1 hour'")
ACTUAL = (
    "SELECT metric, label, bucket, avg, min, max, last, count FROM {} WHERE server_id = %s ORDER BY 1, 2, 3"
)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Conn]:
    connection = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await db.prepare_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()


async def write(conn: Conn, samples: Sequence[MetricSample]) -> None:
    async with conn.transaction():
        await db.write_batch(
            conn,
            samples,
            {},
            rollup_horizon=utcnow() - timedelta(days=7),
            stale_after=timedelta(minutes=1),
        )


async def assert_rollups_match(conn: Conn, server: uuid.UUID) -> int:
    compared = 0
    for expected_sql, table in ((EXPECTED_1M, "metric_rollups_1m"), (EXPECTED_1H, "metric_rollups_1h")):
        expected = await (await conn.execute(expected_sql, (server,))).fetchall()
        actual = await (await conn.execute(ACTUAL.format(table), (server,))).fetchall()
        assert [r[:3] for r in actual] == [r[:3] for r in expected], table
        for got, want in zip(actual, expected, strict=True):
            # min, max, last and count are exact; avg equal up to float summation order.
            assert got[4:] == want[4:], (table, got, want)
            assert got[3] == pytest.approx(want[3], rel=1e-12), (table, got, want)
        compared += len(expected)
    return compared


async def test_rollups_equal_sql_over_raw_rows_after_late_and_replayed_samples(conn: Conn) -> None:
    server = uuid.uuid4()
    rng = random.Random(4)
    base = utcnow().replace(second=0, microsecond=0) - timedelta(hours=3)
    counters = {"sent": 0, "recv": 0}
    samples: list[MetricSample] = []
    for i in range(3 * 60 * 4):  # three hours, one sample every 15 s, spanning hour boundaries
        counters["sent"] += rng.randrange(0, 50_000)
        counters["recv"] += rng.randrange(0, 90_000)
        if i in (100, 333):  # reboots: the counters restart from zero
            counters = {"sent": rng.randrange(0, 1000), "recv": rng.randrange(0, 1000)}
        samples.append(
            sample(
                server,
                base + timedelta(seconds=15 * i, milliseconds=rng.randrange(0, 999)),
                cpu=round(rng.uniform(0, 100), 3),
                sent=counters["sent"],
                recv=counters["recv"],
                disk_percent=round(rng.uniform(10, 90), 2),
            )
        )
    late = [*samples[200:260:3], samples[500]]
    on_time = [s for s in samples if s not in late]

    for start in range(0, len(on_time), 97):
        await write(conn, on_time[start : start + 97])
    assert await assert_rollups_match(conn, server) > 0

    # Late samples land in buckets already rolled up (and change their successors' rates).
    await write(conn, late)
    compared = await assert_rollups_match(conn, server)
    assert compared >= 2 * 3 * 60  # every minute bucket of every metric, and the hours

    # A replay (the same messages again, in another batching) changes nothing.
    before = await (await conn.execute(ACTUAL.format("metric_rollups_1m"), (server,))).fetchall()
    for start in range(0, len(samples), 250):
        await write(conn, samples[start : start + 250])
    after = await (await conn.execute(ACTUAL.format("metric_rollups_1m"), (server,))).fetchall()
    assert after == before
    await assert_rollups_match(conn, server)


async def test_a_counter_that_goes_down_gives_no_rate_and_a_late_sample_revealing_a_reset_clears_it(
    conn: Conn,
) -> None:
    server = uuid.uuid4()
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    await write(
        conn,
        [
            sample(server, t0, 1.0, sent=1000, recv=1000),
            sample(server, t0 + timedelta(seconds=10), 1.0, sent=2000, recv=3000),
            sample(server, t0 + timedelta(seconds=70), 1.0, sent=500, recv=100),  # reset: no rate
            sample(server, t0 + timedelta(seconds=80), 1.0, sent=1500, recv=600),
        ],
    )
    rates = await (
        await conn.execute(
            "SELECT bucket, metric, min, max, count FROM metric_rollups_1m WHERE server_id = %s "
            "AND metric LIKE 'net_%%' ORDER BY 1, 2",
            (server,),
        )
    ).fetchall()
    minute = timedelta(minutes=1)
    assert rates == [
        (t0, "net_rx_bytes_per_s", 200.0, 200.0, 1),
        (t0, "net_tx_bytes_per_s", 100.0, 100.0, 1),
        (t0 + minute, "net_rx_bytes_per_s", 50.0, 50.0, 1),
        (t0 + minute, "net_tx_bytes_per_s", 100.0, 100.0, 1),
    ]
    # A late sample between the first two, with counters above the second's: the second becomes
    # a reset (no rate) and the late one gets the rate from the first.
    await write(conn, [sample(server, t0 + timedelta(seconds=5), 1.0, sent=9000, recv=9000)])
    rates = await (
        await conn.execute(
            "SELECT bucket, metric, min, count FROM metric_rollups_1m WHERE server_id = %s "
            "AND metric LIKE 'net_%%' AND bucket = %s ORDER BY 2",
            (server, t0),
        )
    ).fetchall()
    assert rates == [(t0, "net_rx_bytes_per_s", 1600.0, 1), (t0, "net_tx_bytes_per_s", 1600.0, 1)]
    await assert_rollups_match(conn, server)
