"""Samples per second the alert engine evaluates per worker with 10 rules per server, next to a
raw baseline in the same run.

    .venv/bin/python -m bench.alerts_throughput [--servers 100] [--samples 200] [--latency-seconds 20]
                                                [--runs 3] [--json PATH]

Each server has 10 rules (cpu, memory, load, per-mount disk, per-interface rx/tx rates, with
`for` and hysteresis), and every sample carries 2 disks and 2 interfaces. Per run:

  evaluation  in-process, what the engine does per batch without Kafka: decode the samples,
              evaluate each against its server's 10 rules (state in memory), encode each
              changed server's state once per batch of 5,000; baseline: decoding only. The two
              alternate batch by batch, so load on the machine moves both alike.
  worker      a real alerting worker (`python -m stream_processors.alerts`) on the real Kafka and
              TimescaleDB, in a database and topics of its own, timed from its first fetched
              batch (its /health says when) to the last server's last-sample episode in the
              alerts table (every sample evaluated, its state snapshotted to the changelog, its
              offsets committed); baselines: a plain aiokafka consumer reading and decoding the
              same messages just before, and the run's in-process evaluation (the goal: at least
              0.5 of it, and 20,000 samples/s).
  latency     the same worker, fed at half the worker's measured rate for `--latency-seconds`:
              from a sample's send to its alert event on the alerts topic (every 5th sample of a
              server flips its cpu across a threshold), p50 and p99 (goal: p99 under 1 s).

CPU per sample (process CPU time, which the machine's load moves far less than wall time): of
the in-process evaluation, and of the worker process (from /proc, over the samples it evaluated
between its first batch and the end); `worker_per_core` is 1e6 / the worker's µs, what one worker
would do on a core of its own.

Both the in-process evaluation and the worker run with the collector settings of
`stream_processors/alerts/runtime.py` (the worker's `gc_gen0_threshold`), so that the ratio
compares the same Python. Figures are medians of `--runs` runs, ratios medians of the per-run
ratios; `--json` writes the result in the shape of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer

from alerting.registry import RuleRegistry
from bench.result import StageResult, print_table, service_versions
from ops import migrate
from schemas import topics
from schemas.alerts import ALERT_EVENT, AlertRule
from schemas.canonical import METRIC_SAMPLE, DiskSample, InterfaceSample, MetricSample, utcnow
from stream_processors.alerts.engine import ServerStates, evaluate_batch
from stream_processors.alerts.runtime import tune_gc
from stream_processors.alerts.settings import AlertSettings
from tests.support.alerts import T0, Bus, new_env, wait_for
from tests.support.topics import delete_topics, read_from_beginning

ADMIN_DSN = os.environ.get("FLEETPULSE_TEST_ADMIN_DSN", "postgresql://fleetpulse@127.0.0.1:15432/postgres")
BOOTSTRAP = os.environ.get("FLEETPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


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


def registry_for(rules: dict[uuid.UUID, list[AlertRule]]) -> RuleRegistry:
    registry = RuleRegistry(max_rules_per_server=200)
    for rs in rules.values():
        for r in rs:
            registry.put(r)
    return registry


def bench_evaluation(
    samples: list[MetricSample], rules: dict[uuid.UUID, list[AlertRule]], owner: uuid.UUID, batch: int = 5000
) -> tuple[float, float, float, float]:
    """(evaluated samples/s, decoded samples/s, CPU µs per sample evaluated, CPU µs per sample
    decoded), the two timed batch by batch in turn."""
    raw = [(topics.partition_for_key(topics.server_key(s.server_id), 12), s.to_bytes()) for s in samples]
    registry = registry_for(rules)
    partitions: dict[int, dict[bytes, ServerStates]] = {p: {} for p in range(12)}
    decoding = evaluating = decoding_cpu = evaluating_cpu = 0.0
    for i in range(0, len(raw), batch):
        chunk = raw[i : i + batch]
        start, cpu = time.perf_counter(), time.process_time()
        for _, b in chunk:
            METRIC_SAMPLE.validate_json(b)
        decoding += time.perf_counter() - start
        decoding_cpu += time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        decoded = []
        for p, b in chunk:
            sample = METRIC_SAMPLE.validate_json(b)
            decoded.append((p, topics.server_key(sample.server_id), sample))
        step = evaluate_batch(registry, partitions, decoded, lambda _s: owner)
        for states in step.changed.values():
            orjson.dumps(states)
        evaluating += time.perf_counter() - start
        evaluating_cpu += time.process_time() - cpu
    n = len(raw)
    return n / evaluating, n / decoding, evaluating_cpu / n * 1e6, decoding_cpu / n * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def worker_health(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        body: dict[str, Any] = (await client.get(f"http://127.0.0.1:{port}/health")).json()
    return body


async def measure_latency(
    env: Any, servers: list[uuid.UUID], rate: float, seconds: float, start_index: int
) -> tuple[float, float, int]:
    """Samples at `rate`/s for `seconds`; every 5th sample of a server flips its cpu across the
    90 threshold of its first rule (an event); returns (p50, p99, events) of send -> event seen."""
    sent_at: dict[tuple[uuid.UUID, datetime], float] = {}
    latencies: list[float] = []
    consumer = AIOKafkaConsumer(
        env.topic(topics.ALERTS), bootstrap_servers=BOOTSTRAP, group_id=None, auto_offset_reset="latest"
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=1000)  # positioned at the end before the first send
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.perf_counter()
                for record in records:
                    event = ALERT_EVENT.validate_json(record.value)
                    sent = sent_at.get((event.server_id, event.time))
                    if sent is not None and event.metric == "cpu" and event.threshold == 90:
                        latencies.append(now - sent)

    reader = asyncio.create_task(read())
    async with Bus(env) as bus:
        producer = bus.producer
        total = int(rate * seconds)
        begin = time.perf_counter()
        for n in range(total):
            i = start_index + n // len(servers)
            server = servers[n % len(servers)]
            t = T0 + timedelta(seconds=10 * i)
            cpu = 95.0 if (i // 5) % 2 else 50.0
            sample = MetricSample(server_id=server, time=t, received_at=t, cpu_percent=cpu, memory_percent=40)
            due = begin + n / rate
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            sent_at[(server, t)] = time.perf_counter()
            await producer.send(env.topic(topics.METRICS), sample.to_bytes(), key=topics.server_key(server))
        await producer.flush()
    await asyncio.sleep(5)  # the last events' round trip
    stop.set()
    await reader
    await consumer.stop()
    latencies.sort()
    if not latencies:
        return float("nan"), float("nan"), 0
    return (
        latencies[len(latencies) // 2],
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        len(latencies),
    )


async def bench_worker(
    samples: list[MetricSample],
    rules: dict[uuid.UUID, list[AlertRule]],
    tmp: Path,
    latency_seconds: float,
    per_server: int,
) -> tuple[float, float, float, tuple[float, float, int] | None]:
    """(samples/s, consume + decode samples/s, worker CPU µs per sample, latency p50/p99/count)."""
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
            assert worker.proc is not None
            pid = worker.proc.pid

            async def started() -> tuple[float, int] | None:
                # The worker's CPU time once its engine has evaluated something, and how much.
                try:
                    engine = (await worker_health(worker.web_port))["engine"]
                except httpx.HTTPError:
                    return None  # a loaded machine: ask again
                return (cpu_seconds(pid), int(engine["samples"])) if engine["samples"] else None

            cpu_start, counted_start = await wait_for("first batch", started, workers=[worker], within=300)
            markers = [rs[-1].rule_id for rs in rules.values()]

            async def done() -> bool:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM alerts WHERE rule_id = ANY(%s)", (markers,)
                    )
                    row = await cur.fetchone()
                return row is not None and row[0] >= len(markers)

            await wait_for("every server's last sample", done, workers=[worker], within=1800)
            finished = time.time()
            health = (await worker_health(worker.web_port))["engine"]
            counted = int(health["samples"]) - counted_start
            # Meaningful only over most of the samples (a first batch that took nearly all: none).
            cpu_us = math.nan
            if counted >= len(samples) / 2:
                cpu_us = (cpu_seconds(pid) - cpu_start) / counted * 1e6
            rate = len(samples) / (finished - health["first_sample_at"])
            latency = None
            if latency_seconds > 0:
                latency = await measure_latency(env, list(rules), rate / 2, latency_seconds, per_server + 1)
        finally:
            worker.stop()
        return rate, baseline, cpu_us, latency
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
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="0: no latency run")
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (medians)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON (bench/README.md)")
    args = parser.parse_args()
    # The in-process evaluation under the collector settings the worker runs with (runtime.py).
    tune_gc(AlertSettings().gc_gen0_threshold)
    owner = uuid.uuid4()
    servers = [uuid.uuid4() for _ in range(args.servers)]
    rules = {s: rules_for(s, owner) for s in servers}
    samples = make_samples(servers, args.samples)
    print(f"{len(samples)} samples, {args.servers} servers, 10 rules per server")
    result = StageResult(
        "alerts_throughput",
        {"servers": args.servers, "samples": args.samples, "rules_per_server": 10, "runs": args.runs,
         "latency_seconds": args.latency_seconds, "total_samples": len(samples)},
    )  # fmt: skip
    decode = result.figure("decode", "samples/s", "decode only (in-process)")
    evaluation = result.figure(
        "evaluation", "samples/s", "evaluation in-process (decode, 10 rules)", limit="decode"
    )
    consume = result.figure("consume_decode", "samples/s", "plain aiokafka consume + decode")
    worker = result.figure(
        "worker",
        "samples/s",
        "one worker, Kafka to alerts table",
        limit="evaluation",
        goal=20_000,
        goal_ratio=0.5,
    )
    of_consume = result.figure(
        "worker_of_consume", "samples/s", "one worker (ratio to consume + decode)", limit="consume_decode"
    )
    eval_cpu = result.figure(
        "evaluation_cpu_us", "µs/sample", "CPU per sample, evaluation in-process", higher_is_better=False
    )
    worker_cpu = result.figure(
        "worker_cpu_us",
        "µs/sample",
        "CPU per sample, the worker process",
        higher_is_better=False,
        limit="evaluation_cpu_us",
    )
    per_core = result.figure(
        "worker_per_core", "samples/s", "one worker on a core of its own (1e6 / CPU µs)", goal=20_000
    )
    p50 = result.figure("latency_p50_ms", "ms", "latency sample -> event p50", higher_is_better=False)
    p99 = result.figure(
        "latency_p99_ms", "ms", "latency sample -> event p99", higher_is_better=False, goal=1000
    )
    events: list[int] = []
    for run in range(args.runs):
        evaluated, decoded, evaluated_us, decoded_us = bench_evaluation(samples, rules, owner)
        evaluation.runs.append(evaluated)
        decode.runs.append(decoded)
        eval_cpu.runs.append(evaluated_us)
        line = (
            f"run {run + 1}: evaluation {evaluated:,.0f}/s ({evaluated_us:.1f} µs CPU), "
            f"decode only {decoded:,.0f}/s ({decoded_us:.1f} µs CPU)"
        )
        if not args.skip_worker:
            with TemporaryDirectory() as tmp:
                rate, raw, cpu_us, latency = asyncio.run(
                    bench_worker(samples, rules, Path(tmp), args.latency_seconds, args.samples)
                )
            worker.runs.append(rate)
            of_consume.runs.append(rate)
            consume.runs.append(raw)
            if not math.isnan(cpu_us):
                worker_cpu.runs.append(cpu_us)
                per_core.runs.append(1e6 / cpu_us)
            line += f", worker {rate:,.0f}/s ({cpu_us:.1f} µs CPU), consume + decode {raw:,.0f}/s"
            if latency is not None:
                p50.runs.append(latency[0] * 1000)
                p99.runs.append(latency[1] * 1000)
                events.append(latency[2])
                line += (
                    f", latency at {rate / 2:,.0f}/s p50 {latency[0] * 1000:,.0f} ms"
                    f" p99 {latency[1] * 1000:,.0f} ms"
                )
        print(line, flush=True)
    result.notes["latency_events_per_run"] = events
    result.notes["latency_rate"] = "half the worker's rate measured in the same run"
    result.figures = [f for f in result.figures if f.runs]
    print_table(result)
    if args.json:
        result.write(args.json, versions=asyncio.run(service_versions()))


if __name__ == "__main__":
    main()
