"""History over HTTP equals SQL over the same rows, at each resolution: raw rows, 1-minute and
1-hour buckets (from the persistence processor's rollups, written by its own batch writer), disks,
interface rates; logs filtered and paged by cursor; the bounds refuse what would scan unbounded."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from schemas.canonical import DiskSample, InterfaceSample, LogRecord, MetricSample, log_entry_id
from schemas.settings import CommonSettings
from stream_processors import db as persist_db
from tests.support.api_client import TestUser, api_settings, create_server, register, running_api

STEP = timedelta(seconds=20)
SAMPLES = 450  # 2.5 hours


def _samples(server_id: uuid.UUID, base: datetime) -> list[MetricSample]:
    out = []
    sent = 0
    for i in range(SAMPLES):
        t = base + i * STEP
        sent = 0 if i == 200 else sent + 1000 + (i % 7) * 100  # a counter reset at sample 200
        cpu = float((i * 37) % 100)
        out.append(
            MetricSample(
                server_id=server_id,
                time=t,
                received_at=t,
                cpu_percent=cpu,
                memory_percent=40 + (i % 10),
                memory_used_bytes=1000 + i,
                load1=i / 100,
                disks=(
                    DiskSample(
                        mount="/", total_bytes=1000, used_bytes=i, free_bytes=1000 - i, percent=i / 10
                    ),
                ),
                interfaces=(InterfaceSample(interface="eth0", bytes_sent=sent, bytes_recv=sent * 2),),
            )
        )
    return out


def _logs(server_id: uuid.UUID, base: datetime) -> list[LogRecord]:
    levels = ("INFO", "WARNING", "ERROR")
    out = []
    for i in range(250):
        t = base + timedelta(seconds=i * 10 + (0 if i % 5 else -10))  # some share an instant
        source = "nginx" if i % 2 else "kernel"
        message = f"event {i} {'disk full' if i % 25 == 0 else 'ok'}"
        out.append(
            LogRecord(
                server_id=server_id,
                entry_id=log_entry_id(server_id, t, source, message, i),
                time=t,
                received_at=t,
                level=levels[i % 3],
                message=message,
                source=source,
            )
        )
    return out


@pytest.fixture
async def world(common_settings: CommonSettings, database_url: str):
    settings = api_settings(common_settings, history_max_points=1000, page_max_items=100)
    async with running_api(settings) as (_, client):
        owner = await register(client)
        server_id = await create_server(client, owner)
        base = (datetime.now(UTC) - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
        # Written by the persistence processor's own batch writer: raw rows and rollups.
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await persist_db.prepare_connection(conn)
            async with conn.transaction():
                await persist_db.write_batch(
                    conn,
                    [*_samples(server_id, base), *_logs(server_id, base)],
                    {},
                    rollup_horizon=base - timedelta(days=1),
                    stale_after=timedelta(minutes=5),
                )
        yield client, owner, server_id, base


def _iso(t: datetime) -> str:
    return t.isoformat()


async def _get(client: httpx.AsyncClient, user: TestUser, url: str, **params: Any) -> httpx.Response:
    return await client.get(url, params=params, headers=user.headers)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_metric_history_equals_sql_at_each_resolution(world, db: psycopg.AsyncConnection) -> None:
    client, owner, server_id, base = world
    start, end = base, base + SAMPLES * STEP
    url = f"/api/v1/metrics/{server_id}/history"

    raw = await _get(
        client, owner, url, metric="cpu_percent", start=_iso(start), end=_iso(end), resolution="raw"
    )
    assert raw.status_code == 200, raw.text
    rows = await (
        await db.execute(
            "SELECT time, cpu_percent FROM metrics "
            "WHERE server_id = %s AND time >= %s AND time < %s ORDER BY time",
            (server_id, start, end),
        )
    ).fetchall()
    assert raw.json()["resolution"] == "raw" and len(rows) == SAMPLES
    assert [(_ts(p["time"]), p["value"]) for p in raw.json()["points"]] == [(r[0], r[1]) for r in rows]

    for resolution, width in (("1m", "1 minute"), ("1h", "1 hour")):
        answer = await _get(
            client,
            owner,
            url,
            metric="memory_percent",
            start=_iso(start),
            end=_iso(end),
            resolution=resolution,
        )
        assert answer.status_code == 200, answer.text
        expected = await (
            await db.execute(
                f"""SELECT time_bucket(INTERVAL '{width}', time) AS b, avg(memory_percent),
                           min(memory_percent),
                           max(memory_percent), count(*)
                    FROM metrics WHERE server_id = %s AND time >= %s AND time < %s GROUP BY b ORDER BY b""",
                (server_id, start, end),
            )
        ).fetchall()
        got = answer.json()["points"]
        assert answer.json()["resolution"] == resolution and len(got) == len(expected) > 0
        for point, row in zip(got, expected, strict=True):
            assert _ts(point["time"]) == row[0]
            assert point["value"] == pytest.approx(row[1], rel=1e-9)
            assert (point["min"], point["max"], point["samples"]) == (row[2], row[3], row[4])

    # Disks, bucketed by the minute.
    disk = await _get(
        client,
        owner,
        f"/api/v1/metrics/{server_id}/disks/history",
        mount="/",
        start=_iso(start),
        end=_iso(end),
        resolution="1m",
    )
    assert disk.status_code == 200
    expected = await (
        await db.execute(
            """SELECT time_bucket(INTERVAL '1 minute', time) AS b, avg(percent) FROM metric_disks
               WHERE server_id = %s AND mount = '/' AND time >= %s AND time < %s GROUP BY b ORDER BY b""",
            (server_id, start, end),
        )
    ).fetchall()
    assert [(_ts(p["time"]), pytest.approx(p["value"])) for p in disk.json()["points"]] == [
        (r[0], r[1]) for r in expected
    ]

    # Interface rates, raw: counter differences over time differences; the reset gives no rate.
    net = await _get(
        client,
        owner,
        f"/api/v1/metrics/{server_id}/interfaces/history",
        interface="eth0",
        start=_iso(start),
        end=_iso(end),
        resolution="raw",
    )
    assert net.status_code == 200
    counters = await (
        await db.execute(
            "SELECT time, bytes_sent FROM metric_interfaces "
            "WHERE server_id = %s AND interface = 'eth0' ORDER BY time",
            (server_id,),
        )
    ).fetchall()
    rates = {
        b[0]: (b[1] - a[1]) / (b[0] - a[0]).total_seconds()
        for a, b in itertools.pairwise(counters)
        if b[1] >= a[1]
    }
    points = {
        _ts(p["time"]): p["sent_per_second"] for p in net.json()["points"] if p["sent_per_second"] is not None
    }
    assert points == pytest.approx(rates) and len(points) == SAMPLES - 2
    hourly = await _get(
        client,
        owner,
        f"/api/v1/metrics/{server_id}/interfaces/history",
        interface="eth0",
        start=_iso(start),
        end=_iso(end),
        resolution="1h",
    )
    assert hourly.status_code == 200 and len(hourly.json()["points"]) == 3
    assert all(
        p["recv_per_second"] == pytest.approx(2 * p["sent_per_second"]) for p in hourly.json()["points"]
    )

    # Latest: the newest sample with its disks and interfaces.
    latest = await _get(client, owner, f"/api/v1/metrics/{server_id}/latest")
    assert latest.status_code == 200
    assert _ts(latest.json()["time"]) == base + (SAMPLES - 1) * STEP
    assert [d["mount"] for d in latest.json()["disks"]] == ["/"]


async def test_resolution_choice_and_bounds(world) -> None:
    client, owner, server_id, base = world
    url = f"/api/v1/metrics/{server_id}/history"
    end = base + timedelta(hours=3)

    async def resolution_for(span: timedelta, asked: str = "auto") -> int | str:
        r = await _get(client, owner, url, start=_iso(end - span), end=_iso(end), resolution=asked)
        return r.json()["resolution"] if r.status_code == 200 else r.status_code

    assert await resolution_for(timedelta(minutes=30)) == "raw"
    assert await resolution_for(timedelta(hours=12)) == "1m"  # raw serves at most 6 hours
    assert await resolution_for(timedelta(days=5)) == "1h"  # 7200 minutes > 1000 points
    assert await resolution_for(timedelta(days=500)) == 422  # beyond every resolution's range
    assert await resolution_for(timedelta(days=1), "raw") == 422
    assert await resolution_for(timedelta(days=2), "1m") == 422  # 2880 points > 1000
    assert await resolution_for(timedelta(hours=12), "1h") == "1h"
    assert (
        await _get(client, owner, url, start=_iso(end), end=_iso(end - timedelta(hours=1)))
    ).status_code == 422
    # A naive time is refused (it has no UTC offset), and so is an unknown metric.
    r = await _get(client, owner, url, start="2024-01-01T00:00:00", end=_iso(end))
    assert r.status_code == 422
    assert (await _get(client, owner, url, metric="password_hash")).status_code == 422


async def test_logs_filters_and_cursor_pages(world, db: psycopg.AsyncConnection) -> None:
    client, owner, server_id, base = world
    url = f"/api/v1/logs/{server_id}"
    window = {"start": _iso(base - timedelta(minutes=1)), "end": _iso(base + timedelta(hours=1))}
    expected = await (
        await db.execute(
            "SELECT entry_id FROM logs WHERE server_id = %s AND time >= %s AND time < %s "
            "ORDER BY time DESC, entry_id DESC",
            (server_id, base - timedelta(minutes=1), base + timedelta(hours=1)),
        )
    ).fetchall()
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {**window, "limit": 40, **({"cursor": cursor} if cursor else {})}
        page = await _get(client, owner, url, **params)
        assert page.status_code == 200, page.text
        seen += [item["entry_id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert seen == [str(r[0]) for r in expected] and pages == -(-len(expected) // 40)

    errors = await _get(client, owner, url, **window, level="ERROR", source="nginx", q="DISK FULL")
    expected_errors = await (
        await db.execute(
            "SELECT entry_id FROM logs WHERE server_id = %s AND level = 'ERROR' AND source = 'nginx' "
            "AND message ILIKE '%%disk full%%' AND time >= %s AND time < %s "
            "ORDER BY time DESC, entry_id DESC",
            (server_id, base - timedelta(minutes=1), base + timedelta(hours=1)),
        )
    ).fetchall()
    assert [i["entry_id"] for i in errors.json()["items"]] == [str(r[0]) for r in expected_errors]
    # Wildcards in the text are taken literally.
    assert (await _get(client, owner, url, **window, q="%")).json()["items"] == []
    multi = await _get(client, owner, url, **window, level=["ERROR", "WARNING"], limit=100)
    assert {i["level"] for i in multi.json()["items"]} == {"ERROR", "WARNING"}

    assert (await _get(client, owner, url, cursor="not-a-cursor")).status_code == 422
    assert (await _get(client, owner, url, limit=101)).status_code == 422  # page_max_items
    far = {"start": _iso(base - timedelta(days=60)), "end": _iso(base)}
    assert (await _get(client, owner, url, **far)).status_code == 422  # logs_max_range_days
    assert (await _get(client, owner, url, level="LOUD")).status_code == 422
