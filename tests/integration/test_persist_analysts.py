"""Every query of docs/analysts.md runs as the read-only analyst role and returns the seeded
data; the role cannot write, nor read anything but its views."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import errors

from schemas.canonical import MetricSample, utcnow
from stream_processors import db
from tests.conftest import ROOT
from tests.support.persist import add_server, log_record, sample

Conn = psycopg.AsyncConnection[tuple[object, ...]]
DOC = ROOT / "docs" / "analysts.md"


def doc_queries() -> list[tuple[str, str]]:
    """(title, sql) of every ```sql block, titled by the heading above it."""
    text = DOC.read_text()
    found = []
    for match in re.finditer(r"^### (.+?)\n\n```sql\n(.+?)```", text, re.S | re.M):
        found.append((match.group(1).strip(), match.group(2).strip()))
    return found


@pytest.fixture
async def conn(private_database: str) -> AsyncIterator[Conn]:
    # A database of its own: the documented queries rank whole tables (top N), which other
    # tests' rows in the shared session database would reorder.
    connection = await psycopg.AsyncConnection.connect(private_database, autocommit=True)
    await db.prepare_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()


async def seed(conn: Conn, dsn: str) -> tuple[str, str]:
    """A busy server with a filling disk, errors and an alert; a quiet one that went offline."""
    tag = uuid.uuid4().hex[:6]
    busy_name, quiet_name = f"busy-{tag}", f"quiet-{tag}"
    _, busy = await add_server(dsn, busy_name)
    _, quiet = await add_server(dsn, quiet_name)
    now = utcnow()
    samples: list[MetricSample] = []
    for i in range(40):  # the last 40 minutes, with growing network counters
        t = now - timedelta(minutes=40 - i)
        samples.append(sample(busy, t, cpu=97.5, sent=10_000 * i, recv=50_000 * i, disk_percent=50.0))
        samples.append(sample(quiet, t, cpu=3.0, sent=10 * i, recv=10 * i, disk_percent=20.0))
    for day in range(1, 6):  # a disk filling by 2 % a day
        samples.append(sample(busy, now - timedelta(days=day), cpu=50.0, disk_percent=50.0 - 2 * day))
    async with conn.transaction():
        await db.write_batch(
            conn,
            [*samples, log_record(busy, now - timedelta(minutes=5), "disk error")],
            {},
            rollup_horizon=now - timedelta(days=7),
            stale_after=timedelta(minutes=5),
        )
    await conn.execute("UPDATE logs SET level = 'ERROR' WHERE server_id = %s", (busy,))
    await conn.execute("UPDATE servers SET status = 'offline', last_seen = now() WHERE id = %s", (quiet,))
    await conn.execute(
        "INSERT INTO alerts (episode_id, rule_id, rule_name, origin, server_id, metric, severity, "
        "comparison, threshold, state, started_at, fired_at, message) "
        "VALUES (%s, %s, 'cpu high', 'rule', %s, 'cpu_percent', 'critical', '>', 90, 'firing', "
        "now() - interval '10 minutes', now() - interval '9 minutes', 'cpu high')",
        (uuid.uuid4(), uuid.uuid4(), busy),
    )
    return busy_name, quiet_name


async def as_analyst(conn: Conn, sql: str) -> list[tuple[object, ...]]:
    async with conn.transaction(force_rollback=True):
        await conn.execute("SET LOCAL ROLE fleetpulse_analyst")
        cur = await conn.execute(sql)
        return await cur.fetchall()


async def test_every_documented_query_runs_as_the_analyst_role(conn: Conn, private_database: str) -> None:
    busy, quiet = await seed(conn, private_database)
    queries = dict(doc_queries())
    assert len(queries) >= 6, "the doc's queries were not found"
    names: dict[str, list[object]] = {}
    for title, sql in queries.items():
        rows = await as_analyst(conn, sql)
        assert rows, f"{title!r} returned nothing"
        names[title] = [value for row in rows for value in row]

    top = await as_analyst(conn, queries["Top servers by CPU over the last hour"])
    ours = [row for row in top if row[0] in (busy, quiet)]
    assert ours[0][0] == busy and float(ours[0][2]) == 97.5  # type: ignore[arg-type]
    trend = [
        row
        for row in await as_analyst(conn, queries["Disk fill trends: growth per day and days until full"])
        if row[0] == busy
    ]
    assert trend and trend[0][1] == "/" and float(trend[0][2]) > 0  # type: ignore[arg-type]
    assert busy in names["Errors in the logs per server and hour"]
    assert quiet in names["Servers that are not online, and since when"]
    assert busy in names["Busiest network interfaces over the last day"]
    alerts = await as_analyst(conn, queries["Alert counts per day"])
    assert any(row[1] == "critical" and int(row[2]) >= 1 and int(row[3]) >= 1 for row in alerts)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO metrics (server_id, time, cpu_percent, memory_percent) "
        "VALUES (gen_random_uuid(), now(), 1, 1)",
        "UPDATE servers SET name = 'x'",
        "DELETE FROM logs",
        "DELETE FROM metric_rollups_1m",
        "SELECT password_hash FROM users",
        "SELECT secret_hash FROM api_keys",
        "SELECT * FROM metrics",
        "SELECT * FROM alerts",
        "CREATE TABLE analyst_scratch (x int)",
    ],
)
async def test_the_analyst_role_cannot_write_nor_read_past_its_views(conn: Conn, sql: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        await as_analyst(conn, sql)
