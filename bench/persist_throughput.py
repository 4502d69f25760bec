"""Rows per second the persistence path sustains, next to a raw binary COPY of the same rows into
the same tables, measured in the same run on a fresh database.

    .venv/bin/python -m bench.persist_throughput [--servers 200] [--samples 150] [--runs 3] [--json PATH]

Three measurements, each on empty tables:
  raw COPY   binary COPY of the metric, disk and interface rows straight into their hypertables
             (one transaction, no conflict handling, no rollups): the ceiling;
  write path stream_processors.db.write_batch in batches of --batch (staging COPY, ON CONFLICT on
             the natural keys, rollup recomputation, offsets row), no Kafka;
  full path  the same samples produced to Kafka and persisted by a PersistenceService (fetch,
             decode, write, offset commit), timed from its start to the last row.

Each run takes the three in turn on empty tables; figures are medians of `--runs` runs, ratios
medians of the per-run ratios (bench/README.md describes the JSON that `--json` writes).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
from aiokafka import AIOKafkaProducer

from bench.result import StageResult, print_table, service_versions
from ops import migrate
from ops.topics import ensure_topics
from schemas import topics
from schemas.canonical import DiskSample, InterfaceSample, MetricSample, utcnow
from schemas.settings import CommonSettings, Environment
from stream_processors import db
from stream_processors.db import Database
from stream_processors.persist import PersistenceService
from stream_processors.settings import ProcessorSettings
from tests.support.topics import delete_topics

TABLES = ("metrics", "metric_disks", "metric_interfaces", "metric_rollups_1m", "metric_rollups_1h")


def make_samples(servers: int, per_server: int) -> list[MetricSample]:
    start = utcnow() - timedelta(seconds=5 * per_server + 60)
    out = []
    for s in range(servers):
        server = uuid.uuid4()
        for i in range(per_server):
            out.append(
                MetricSample(
                    server_id=server,
                    time=start + timedelta(seconds=5 * i),
                    received_at=start + timedelta(seconds=5 * i),
                    cpu_percent=(i * 7 + s) % 100,
                    memory_percent=40.0,
                    memory_total_bytes=8 << 30,
                    memory_used_bytes=(3 << 30) + i,
                    load1=0.5,
                    load5=0.4,
                    load15=0.3,
                    uptime_seconds=1000 + 5 * i,
                    cpu_cores=4,
                    disks=tuple(
                        DiskSample(
                            mount=m,
                            total_bytes=10**12,
                            used_bytes=10**11 + i,
                            free_bytes=9 * 10**11 - i,
                            percent=10.0,
                        )
                        for m in ("/", "/data")
                    ),
                    interfaces=tuple(
                        InterfaceSample(interface=n, bytes_sent=1000 * i, bytes_recv=3000 * i)
                        for n in ("eth0", "eth1")
                    ),
                )
            )
    return out


def rows_of(samples: list[MetricSample]) -> int:
    return sum(1 + len(s.disks) + len(s.interfaces) for s in samples)


async def truncate(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}, persisted_offsets")


async def raw_copy(dsn: str, samples: list[MetricSample]) -> float:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        began = time.perf_counter()
        async with conn.cursor() as cur:
            for table, columns, rows in (
                (
                    "metrics",
                    db._METRIC_COLUMNS,
                    [db.metric_row(m) for m in samples],
                ),
                (
                    "metric_disks",
                    db._DISK_COLUMNS,
                    db.disk_rows(samples),
                ),
                (
                    "metric_interfaces",
                    db._INTERFACE_COLUMNS,
                    db.interface_rows(samples),
                ),
            ):
                names = ", ".join(n for n, _ in columns)
                async with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types([t for _, t in columns])
                    for row in rows:
                        await copy.write_row(row)
        await conn.commit()
        return time.perf_counter() - began


async def write_path(dsn: str, samples: list[MetricSample], batch: int) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await db.prepare_connection(conn)
        began = time.perf_counter()
        for start in range(0, len(samples), batch):
            async with conn.transaction():
                await db.write_batch(
                    conn,
                    samples[start : start + batch],
                    {("bench", 0): start},
                    rollup_horizon=utcnow() - timedelta(days=7),
                    stale_after=timedelta(minutes=1),
                )
        return time.perf_counter() - began


async def produce(common: CommonSettings, samples: list[MetricSample]) -> None:
    """The samples into the metrics topic, once (each run's full path reads them in a new group)."""
    producer = AIOKafkaProducer(bootstrap_servers=common.kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        topic = topics.METRICS.name(common.topic_prefix)
        futures = [
            await producer.send(topic, s.to_bytes(), key=topics.server_key(s.server_id)) for s in samples
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def full_path(common: CommonSettings, samples: list[MetricSample], batch: int) -> float:
    settings = ProcessorSettings(
        common=common, app_id=f"bench-{uuid.uuid4().hex[:6]}", batch_max_records=batch
    )
    database = Database(settings)
    await database.start()
    service = PersistenceService(settings, database)
    began = time.perf_counter()
    await service.start()
    try:
        async with await psycopg.AsyncConnection.connect(common.database_url, autocommit=True) as conn:
            while True:
                row = await (await conn.execute("SELECT count(*) FROM metrics")).fetchone()
                if row is not None and row[0] >= len(samples):
                    break
                await asyncio.sleep(0.05)
        return time.perf_counter() - began
    finally:
        await service.stop()
        await database.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--samples", type=int, default=150, help="samples per server")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (medians)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON (bench/README.md)")
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
        await ensure_topics(args.kafka, prefix, 4)
        samples = make_samples(args.servers, args.samples)
        rows = rows_of(samples)
        result = StageResult(
            "persist_throughput",
            {"servers": args.servers, "samples": args.samples, "batch": args.batch, "runs": args.runs,
             "rows": rows, "rows_per_sample": 5},
        )  # fmt: skip
        raw = result.figure("raw_copy", "rows/s", "raw binary COPY")
        write = result.figure("write_path", "rows/s", "write path (no Kafka)", limit="raw_copy")
        full = result.figure(
            "full_path", "rows/s", "full path (Kafka -> DB)", limit="raw_copy", goal=100_000, goal_ratio=0.7
        )
        with TemporaryDirectory() as state:
            common = CommonSettings(
                env=Environment.TEST,
                state_dir=Path(state),
                kafka_bootstrap=args.kafka,
                database_url=dsn,
                topic_prefix=prefix,
                topic_partitions=4,
            )
            await produce(common, samples)
            print(f"{len(samples)} samples = {rows} rows (metrics + 2 disks + 2 interfaces per sample)")
            for run in range(args.runs):
                # The three measurements of one run back to back, so their ratios share the load.
                await truncate(dsn)
                raw.runs.append(rows / await raw_copy(dsn, samples))
                await truncate(dsn)
                write.runs.append(rows / await write_path(dsn, samples, args.batch))
                await truncate(dsn)
                full.runs.append(rows / await full_path(common, samples, args.batch))
                print(
                    f"run {run + 1}: raw COPY {raw.runs[-1]:,.0f}, write path {write.runs[-1]:,.0f}, "
                    f"full path {full.runs[-1]:,.0f} rows/s"
                )
        print_table(result)
        if args.json:
            result.write(args.json, versions=await service_versions(dsn))
    finally:
        await delete_topics(args.kafka, prefix)
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
