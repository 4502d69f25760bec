"""Samples per second the alert engine evaluates per worker with 10 rules per server, next to a
raw baseline in the same run.

    .venv/bin/python -m bench.alerts_throughput [--servers 100] [--samples 200]

Each server has 10 rules (cpu, memory, load, per-mount disk, per-interface rx/tx rates, with
`for` and hysteresis), and every sample carries 2 disks and 2 interfaces. Two measurements:

  evaluation  in-process: decode the sample, decode the server's state, evaluate its 10 rules,
              encode the state (what the live agent does per sample, without Kafka); baseline:
              decoding the same bytes only.
  worker      a real alerting worker (`python -m stream_processors.alerts`) on the real Kafka and
              TimescaleDB, timed from "rules loaded" to the last server's last-sample episode in
              the alerts table (every sample went through the state table and its changelog);
              baseline: a plain aiokafka consumer reading and decoding the same messages.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer

from alerting.evaluation import evaluate_server, spec_from_rule
from ops import migrate
from schemas import topics
from schemas.alerts import AlertRule
from schemas.canonical import METRIC_SAMPLE, DiskSample, InterfaceSample, MetricSample, utcnow
from stream_processors.alerts.engine import decode_states
from tests.support.alerts import T0, Bus, new_env, wait_for
from tests.support.topics import delete_topics, read_from_beginning

ADMIN_DSN = "postgresql://fleetpulse@127.0.0.1:15432/postgres"
BOOTSTRAP = "127.0.0.1:19092"


def rules_for(server: uuid.UUID, owner: uuid.UUID) -> list[AlertRule]:
    now = utcnow()
    shapes = [
        {"metric": "cpu", "threshold": 90, "for_seconds": 30, "clear_threshold": 80},
        {"metric": "cpu", "comparison": "lt", "threshold": 1, "for_seconds": 60},
        {
            "metric": "memory",
            "threshold": 95,
            "for_seconds": 60,
            "clear_threshold": 90,
            "clear_for_seconds": 30,
        },
        {"metric": "load1", "threshold": 8, "for_seconds": 120},
        {"metric": "load5", "threshold": 6, "for_seconds": 120},
        {"metric": "disk", "threshold": 85, "clear_threshold": 80},
        {"metric": "disk", "subject": "/", "threshold": 95},
        {"metric": "net_rx", "threshold": 50_000_000, "for_seconds": 30},
        {"metric": "net_tx", "threshold": 50_000_000, "for_seconds": 30},
        # The 10th also marks the end: the last sample of each server has memory at 100.
        {"metric": "memory", "threshold": 99.5, "name": "end marker"},
    ]
    return [
        AlertRule(
            rule_id=uuid.uuid4(),
            owner_id=owner,
            server_id=server,
            name=s.pop("name", "bench"),
            updated_at=now,
            **s,
        )
        for s in shapes
    ]


def make_samples(servers: list[uuid.UUID], per_server: int) -> list[MetricSample]:
    out = []
    for i in range(per_server):
        for n, server in enumerate(servers):
            t = T0 + timedelta(seconds=10 * i)
            last = i == per_server - 1
            out.append(
                MetricSample(
                    server_id=server,
                    time=t,
                    received_at=t,
                    cpu_percent=(i * 7 + n) % 100,
                    memory_percent=100.0 if last else 40.0 + (i % 10),
                    load1=0.5 + (i % 5),
                    load5=0.4,
                    load15=0.3,
                    disks=(
                        DiskSample(
                            mount="/",
                            total_bytes=100,
                            used_bytes=50 + i % 40,
                            free_bytes=50 - i % 40,
                            percent=50 + i % 40,
                        ),
                        DiskSample(mount="/data", total_bytes=100, used_bytes=20, free_bytes=80, percent=20),
                    ),
                    interfaces=(
                        InterfaceSample(interface="eth0", bytes_sent=i * 1000, bytes_recv=i * 5000),
                        InterfaceSample(interface="lo", bytes_sent=i * 10, bytes_recv=i * 10),
                    ),
                )
            )
    return out


def bench_evaluation(
    samples: list[MetricSample], rules: dict[uuid.UUID, list[AlertRule]]
) -> tuple[float, float]:
    raw = [s.to_bytes() for s in samples]
    specs = {server: [spec_from_rule(r) for r in rs] for server, rs in rules.items()}
    start = time.perf_counter()
    for b in raw:
        METRIC_SAMPLE.validate_json(b)
    baseline = len(raw) / (time.perf_counter() - start)
    table: dict[uuid.UUID, bytes] = {}
    start = time.perf_counter()
    for b in raw:
        sample = METRIC_SAMPLE.validate_json(b)
        states = decode_states(table.get(sample.server_id))
        evaluate_server(specs[sample.server_id], states, sample, None, lambda _r: None)
        table[sample.server_id] = orjson.dumps(states)
    evaluated = len(raw) / (time.perf_counter() - start)
    return evaluated, baseline


async def raw_consume(topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await read_from_beginning(consumer, topic)
        seen = 0
        start = time.perf_counter()
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    METRIC_SAMPLE.validate_json(record.value)
                    seen += 1
        return count / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def bench_worker(
    samples: list[MetricSample], rules: dict[uuid.UUID, list[AlertRule]], tmp: Path
) -> tuple[float, float]:
    name = f"fp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    prefix = f"bench-alerts-{uuid.uuid4().hex[:8]}."
    try:
        migrate.apply(dsn)
        env = await new_env(dsn, BOOTSTRAP, tmp, prefix)
        async with Bus(env) as bus:
            for rs in rules.values():
                for r in rs:
                    await bus.rule(r)
            await bus.samples(samples)
        baseline = await raw_consume(env.topic(topics.METRICS), len(samples))
        # Production cache lifetime for owners (the test harness uses 1 s).
        worker = env.worker(f"bench-alerts-{uuid.uuid4().hex[:6]}", owners_ttl_seconds=60).start()
        try:
            all_ids = {r.rule_id for rs in rules.values() for r in rs}
            await wait_for("rules loaded", lambda: worker.has_rules(all_ids), workers=[worker], within=300)
            start = time.perf_counter()
            markers = [rs[-1].rule_id for rs in rules.values()]

            async def done() -> bool:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM alerts WHERE rule_id = ANY(%s)", (markers,)
                    )
                    row = await cur.fetchone()
                return row is not None and row[0] >= len(markers)

            await wait_for("every server's last sample", done, workers=[worker], within=1800)
            rate = len(samples) / (time.perf_counter() - start)
        finally:
            worker.stop()
        return rate, baseline
    finally:
        await delete_topics(BOOTSTRAP, prefix)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200, help="samples per server")
    parser.add_argument("--skip-worker", action="store_true")
    args = parser.parse_args()
    owner = uuid.uuid4()
    servers = [uuid.uuid4() for _ in range(args.servers)]
    rules = {s: rules_for(s, owner) for s in servers}
    samples = make_samples(servers, args.samples)
    print(f"{len(samples)} samples, {args.servers} servers, 10 rules per server")
    evaluated, decoded = bench_evaluation(samples, rules)
    ratio = evaluated / decoded
    print(
        f"evaluation  {evaluated:8.0f} samples/s  baseline (decode only) {decoded:8.0f}/s  ratio {ratio:.3f}"
    )
    if not args.skip_worker:
        with TemporaryDirectory() as tmp:
            rate, raw = asyncio.run(bench_worker(samples, rules, Path(tmp)))
        ratio = rate / raw
        print(f"worker      {rate:8.0f} samples/s  baseline (consume+decode) {raw:8.0f}/s  ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
