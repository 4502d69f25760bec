"""How long `GET /api/v1/fleet` takes for one user with many servers, next to the raw limit: a
bare read of the same user's server rows, measured in the same run on a fresh database.

    .venv/bin/python -m bench.fleet_summary [--servers 1000] [--samples 90] [--runs 9]

Set-up: --servers servers of one user, each with --samples samples 10 s apart (the last 15
minutes, two disks each) written by the persistence path (so the 1-minute rollups the sparkline
reads are the real ones), and a firing alert on every tenth server. Then, --runs times each,
medians reported:
  raw rows   SELECT of the user's server rows (id, name, tags, status, last_seen): the floor any
             fleet answer pays;
  fleet SQL  api.db.fleet.fleet, the endpoint's one query (newest sample, fullest disk, alerts,
             15-point sparkline per server);
  endpoint   GET /api/v1/fleet through the real app in-process (auth, query, model, JSON), over
             httpx's ASGI transport (no network).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import asyncpg
import psycopg

from api.db import fleet as fleet_db
from api.routes.fleet import SPARK_POINTS, spark_start
from ops import migrate
from ops.topics import ensure_topics
from schemas.canonical import DiskSample, MetricSample
from schemas.settings import CommonSettings, Environment
from stream_processors import db
from tests.support.api_client import api_settings, register, running_api
from tests.support.topics import delete_topics


def make_samples(servers: list[uuid.UUID], per_server: int, now: datetime) -> list[MetricSample]:
    out = []
    for s, server in enumerate(servers):
        for i in range(per_server):
            t = now - timedelta(seconds=10 * (per_server - i))
            out.append(
                MetricSample(
                    server_id=server,
                    time=t,
                    received_at=t,
                    cpu_percent=(i * 7 + s) % 100,
                    memory_percent=40.0 + (s % 20),
                    disks=tuple(
                        DiskSample(
                            mount=m,
                            total_bytes=10**12,
                            used_bytes=10**11 * (k + 1),
                            free_bytes=10**12 - 10**11 * (k + 1),
                            percent=10.0 * (k + 1),
                        )
                        for k, m in enumerate(("/", "/data"))
                    ),
                )
            )
    return out


async def populate(dsn: str, owner: uuid.UUID, servers: int, per_server: int) -> None:
    ids = [uuid.uuid4() for _ in range(servers)]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO servers (id, owner_id, name, tags, status) VALUES (%s, %s, %s, %s, 'online')",
                [(sid, owner, f"srv-{i:05d}", ["prod" if i % 2 else "dev"]) for i, sid in enumerate(ids)],
            )
            await cur.executemany(
                """INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id,
                       metric, severity, comparison, threshold, state, started_at, fired_at, message)
                   VALUES (%s, %s, 'cpu', 'rule', %s, %s, 'cpu', 'warning', 'gt', 90, 'firing',
                           now(), now(), 'hot')""",
                [(uuid.uuid4(), uuid.uuid4(), owner, sid) for sid in ids[::10]],
            )
        await db.prepare_connection(conn)
        samples = make_samples(ids, per_server, datetime.now(UTC))
        for i in range(0, len(samples), 3000):
            async with conn.transaction():
                await db.write_batch(
                    conn,
                    samples[i : i + 3000],
                    {},
                    rollup_horizon=datetime.now(UTC) - timedelta(days=1),
                    stale_after=timedelta(minutes=5),
                )
        await conn.execute("ANALYZE")


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


async def measure(common: CommonSettings, runs: int, servers: int, per_server: int) -> None:
    async with running_api(api_settings(common)) as (_, client):
        user = await register(client)
        started = time.perf_counter()
        await populate(common.database_url, user.id, servers, per_server)
        print(f"set-up: {servers} servers x {per_server} samples in {time.perf_counter() - started:.1f} s")
        conn = await asyncpg.connect(common.database_url)
        raw: list[float] = []
        sql: list[float] = []
        http: list[float] = []
        try:
            for _ in range(runs):
                t = time.perf_counter()
                rows = await conn.fetch(
                    "SELECT id, name, tags, status, last_seen FROM servers WHERE owner_id = $1 "
                    "ORDER BY name, id",
                    user.id,
                )
                raw.append(time.perf_counter() - t)
                assert len(rows) == servers
                t = time.perf_counter()
                fleet = await fleet_db.fleet(
                    conn,
                    user.id,
                    tags=None,
                    statuses=None,
                    limit=servers + 1,
                    spark_start=spark_start(datetime.now(UTC)),
                    spark_points=SPARK_POINTS,
                )
                sql.append(time.perf_counter() - t)
                assert len(fleet) == servers
                t = time.perf_counter()
                r = await client.get("/api/v1/fleet", headers=user.headers)
                http.append(time.perf_counter() - t)
                assert r.status_code == 200 and len(r.json()["servers"]) == servers
            size = len(r.content)
        finally:
            await conn.close()
    floor = _median_ms(raw)
    print(f"{runs} runs each, medians; answer {size / 1024:.0f} KiB")
    for label, times in (("raw server rows", raw), ("fleet SQL", sql), ("GET /api/v1/fleet", http)):
        med = _median_ms(times)
        print(
            f"{label:20s} median {med:8.1f} ms  (min {min(times) * 1000:7.1f}, max {max(times) * 1000:7.1f})"
            f"  ratio to raw rows {med / floor:6.1f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=90, help="samples per server, 10 s apart")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--admin-dsn", default="postgresql://fleetpulse@127.0.0.1:15432/postgres")
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    args = parser.parse_args()

    name = f"fp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = args.admin_dsn.rpartition("/")[0] + f"/{name}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    try:
        migrate.apply(dsn)
        await ensure_topics(args.kafka, prefix, 1)  # the API's lifespan needs its topics to exist
        with TemporaryDirectory() as state:
            common = CommonSettings(
                env=Environment.TEST,
                state_dir=Path(state),
                kafka_bootstrap=args.kafka,
                database_url=dsn,
                topic_prefix=prefix,
                topic_partitions=1,
            )
            await measure(common, args.runs, args.servers, args.samples)
    finally:
        await delete_topics(args.kafka, prefix)
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
