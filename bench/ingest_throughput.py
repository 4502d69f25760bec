"""Quick ingest throughput check: frames per second one ingest process accepts and durably
produces (acked only after Kafka confirmed), for 1..N connected agents, as a ratio of the raw
aiokafka produce rate measured in the same run (same broker, same producer settings).

    .venv/bin/python -m bench.ingest_throughput --frames 20000 --agents 1 10 50 [--runs 3] [--json PATH]

Needs the local Kafka and PostgreSQL (`infra/services.sh start`). It works in a database and a
topic namespace of its own and drops the database at the end. The ingest process runs as a
subprocess (`python -m ingest`), so the load generator does not share its event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import psycopg
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from bench.result import StageResult, print_table, service_versions
from ops import migrate
from ops.topics import ensure_topics
from schemas import apikeys, topics
from schemas.canonical import MetricSample
from tests.support.topics import delete_topics

BOOTSTRAP = os.environ.get("FLEETPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
ADMIN_DSN = os.environ.get("FLEETPULSE_TEST_ADMIN_DSN", "postgresql://fleetpulse@127.0.0.1:15432/postgres")
WINDOW = 32  # unacknowledged frames per agent


def frame(server_id: uuid.UUID, seq: int) -> str:
    return orjson.dumps(
        {
            "type": "metrics",
            "seq": seq,
            "server_id": str(server_id),
            "cpu_percent": 12.5,
            "memory_percent": 40.0,
            "timestamp": datetime.now(UTC).isoformat(),
            "disk_usage": [
                {"path": "/", "total": 10**11, "used": 4 * 10**10, "free": 6 * 10**10, "percent": 40.0}
            ],
            "network": [{"interface": "eth0", "bytes_sent": 123456789, "bytes_recv": 987654321}],
            "load_average": [0.5, 0.4, 0.3],
        }
    ).decode()


async def raw_baseline(topic: str, count: int) -> float:
    """Records/s of a bare idempotent producer (acks=all) sending the same canonical payload."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        server = uuid.uuid4()
        now = datetime.now(UTC)
        payload = MetricSample(
            server_id=server, time=now, received_at=now, cpu_percent=12.5, memory_percent=40.0
        ).to_bytes()
        key = topics.server_key(server)
        await producer.send_and_wait(topic, payload, key=key)  # metadata warm-up
        start = time.perf_counter()
        futures = [await producer.send(topic, payload, key=key) for _ in range(count)]
        await asyncio.gather(*futures)
        return count / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def agent(url: str, key: str, server_id: uuid.UUID, count: int, ready: asyncio.Barrier) -> None:
    async with connect(url, max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "api_key": key}).decode())
        assert orjson.loads(await ws.recv())["type"] == "auth_success"
        await ready.wait()
        window = asyncio.Semaphore(WINDOW)
        reader_failed: list[dict[str, object]] = []

        async def read_acks(conn: ClientConnection) -> None:
            acked = 0
            while acked < count:
                reply = orjson.loads(await conn.recv())
                if reply["type"] != "ack":
                    # Never expected here: a retry error means Kafka was slower than produce_timeout.
                    reader_failed.append(reply)
                acked += 1
                window.release()

        reader = asyncio.create_task(read_acks(ws))
        for seq in range(count):
            await window.acquire()
            await ws.send(frame(server_id, seq))
        await reader
        if reader_failed:
            raise RuntimeError(f"{len(reader_failed)} frames not acked, first: {reader_failed[0]}")


async def run_agents(url: str, keys: list[tuple[str, uuid.UUID]], total: int) -> float:
    per_agent = max(1, total // len(keys))
    ready = asyncio.Barrier(len(keys) + 1)
    tasks = [asyncio.create_task(agent(url, k, sid, per_agent, ready)) for k, sid in keys]
    await ready.wait()
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    return per_agent * len(keys) / (time.perf_counter() - start)


def create_keys(dsn: str, pepper: str, count: int) -> list[tuple[str, uuid.UUID]]:
    out: list[tuple[str, uuid.UUID]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        user = uuid.uuid4()
        conn.execute(
            "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
            (user, f"{user}@bench.test", str(user)),
        )
        for _ in range(count):
            server = uuid.uuid4()
            plaintext, parsed = apikeys.generate()
            conn.execute("INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, 'bench')", (server, user))
            conn.execute(
                "INSERT INTO api_keys (id, server_id, lookup_id, secret_hash) VALUES (%s, %s, %s, %s)",
                (uuid.uuid4(), server, parsed.lookup_id, apikeys.hash_secret(pepper.encode(), parsed.secret)),
            )
            out.append((plaintext, server))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc): independent of the machine's load."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=20_000, help="frames per measurement (all agents)")
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (medians)")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON (bench/README.md)")
    args = parser.parse_args()

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    database = f"fp_bench_{uuid.uuid4().hex[:8]}"
    base = ADMIN_DSN.rpartition("/")[0]
    dsn = f"{base}/{database}"
    pepper = secrets.token_urlsafe(48)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    proc: subprocess.Popen[bytes] | None = None
    try:
        migrate.apply(dsn)
        await ensure_topics(BOOTSTRAP, prefix, 12)
        keys = create_keys(dsn, pepper, max(args.agents))
        port = free_port()
        env = {
            **os.environ,
            "FLEETPULSE_ENV": "test",
            "FLEETPULSE_KEY_PEPPER": pepper,
            "FLEETPULSE_JWT_SECRET": secrets.token_urlsafe(48),
            "FLEETPULSE_DATABASE_URL": dsn,
            "FLEETPULSE_KAFKA_BOOTSTRAP": BOOTSTRAP,
            "FLEETPULSE_TOPIC_PREFIX": prefix,
            "FLEETPULSE_INGEST_PORT": str(port),
            # Measure throughput, not the timeout: a loaded machine can queue for seconds.
            "FLEETPULSE_INGEST_PRODUCE_TIMEOUT": "60",
            # Measure the pipeline, not the per-agent frame rate limit (100 frames/s by default).
            "FLEETPULSE_INGEST_FRAME_RATE": "1000000",
            "FLEETPULSE_INGEST_FRAME_BURST": "1000000",
        }
        proc = subprocess.Popen([sys.executable, "-m", "ingest"], env=env, stderr=subprocess.DEVNULL)
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("ingest did not start")
        url = f"ws://127.0.0.1:{port}/api/v1/agents/ws"
        metrics_topic = topics.METRICS.name(prefix)
        result = StageResult(
            "ingest_throughput",
            {"frames": args.frames, "agents": args.agents, "runs": args.runs, "window": WINDOW},
        )
        raw = result.figure("raw_produce", "records/s", "raw aiokafka produce (acks=all, idempotent)")
        rates = {
            n: result.figure(
                f"ingest_{n}_agents",
                "frames/s",
                f"ingest, {n} agents, acked",
                limit="raw_produce",
                goal_ratio=0.5,
            )
            for n in args.agents
        }
        cpus = {
            n: result.figure(
                f"ingest_cpu_{n}_agents", "us/frame", f"ingest CPU, {n} agents", higher_is_better=False
            )
            for n in args.agents
        }
        for run in range(args.runs):
            # The limit before and after the ingest measurements of the run, their mean the run's limit.
            before = await raw_baseline(metrics_topic, args.frames)
            for count in args.agents:
                cpu_before = cpu_seconds(proc.pid)
                rates[count].runs.append(await run_agents(url, keys[:count], args.frames))
                cpus[count].runs.append((cpu_seconds(proc.pid) - cpu_before) / args.frames * 1e6)
            after = await raw_baseline(metrics_topic, args.frames)
            raw.runs.append((before + after) / 2)
            print(
                f"run {run + 1}: raw {before:,.0f} / {after:,.0f} records/s; "
                + ", ".join(f"{n} agents {rates[n].runs[-1]:,.0f} frames/s" for n in args.agents)
            )
        print_table(result)
        if args.json:
            result.write(args.json, versions=await service_versions(dsn))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        await delete_topics(BOOTSTRAP, prefix)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
