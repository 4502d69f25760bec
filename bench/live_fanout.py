"""Live sockets benchmark: deliveries per second and memory per connection on one API process,
and the latency from a sample's publication to a browser socket's receive (p50, p99).

    .venv/bin/python -m bench.live_fanout --sockets 1000
    .venv/bin/python -m bench.live_fanout --sockets 10000 --client-procs 3

Uses the real Kafka and TimescaleDB (`infra/services.sh start`), a database and a topic namespace
of its own (dropped / left unused at the end). The API (`api.app.create_app`) runs in its own
process; clients run in `--client-procs` other processes. Deliveries per second are reported next
to a raw baseline measured in the same run: a plain `websockets` server that broadcasts the same
number of pre-encoded frames to the same number of sockets (no Kafka, no auth, no history).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

KAFKA = os.environ.get("FLEETPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
ADMIN_DSN = os.environ.get("FLEETPULSE_TEST_ADMIN_DSN", "postgresql://fleetpulse@127.0.0.1:15432/postgres")
SECRET = "bench-live-" + "x" * 40


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# An RSS difference smaller than this is allocator and garbage-collector noise, not sockets: the
# per-socket figure is then reported as unresolved (None) rather than as a meaningless number.
RSS_RESOLUTION_MB = 2.0


def settled_rss_mb(pid: int, tries: int = 20) -> float:
    """RSS once two readings half a second apart agree within 0.25 MB (start-up has finished)."""
    prev = rss_mb(pid)
    for _ in range(tries):
        time.sleep(0.5)
        cur = rss_mb(pid)
        if abs(cur - prev) < 0.25:
            return cur
        prev = cur
    return prev


def kb_per_socket(grown_mb: float, sockets: int) -> float | None:
    if sockets <= 0 or grown_mb < RSS_RESOLUTION_MB:
        return None
    return round(grown_mb * 1024 / sockets, 1)


# --- the servers (child processes) -------------------------------------------------------------


def serve_api(port: int, dsn: str, prefix: str) -> None:
    raise_fd_limit()
    import uvicorn

    from api.app import create_app
    from api.live.settings import LiveSettings
    from api.settings import ApiSettings
    from schemas.settings import CommonSettings, Environment

    common = CommonSettings(
        env=Environment.TEST, database_url=dsn, topic_prefix=prefix, kafka_bootstrap=KAFKA, jwt_secret=SECRET
    )
    settings = ApiSettings(common=common, live=LiveSettings(), db_pool_max=20)
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        ws_ping_interval=None,
        ws_per_message_deflate=settings.ws_per_message_deflate,  # the product's default: off
        log_level="warning",
        backlog=8192,
    )


def serve_raw(port: int) -> None:
    """The baseline: a bare websockets server; `burst N` on stdin broadcasts N frames to all."""
    raise_fd_limit()
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()
    frame = orjson.dumps({"type": "metrics", "data": {"timestamp": "x", "cpu_percent": 1.0}}).decode()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type":"history_end"}')
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def main() -> None:
        # Uncompressed, as the API's sockets are by default: the same bytes on the wire.
        async with serve(handler, "127.0.0.1", port, ping_interval=None, backlog=8192, compression=None):
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    return
                for _ in range(int(line.split()[1])):
                    broadcast(clients, frame)
                    await asyncio.sleep(0)

    asyncio.run(main())


# --- the clients (child processes) -------------------------------------------------------------


def client_proc(urls: list[str], token: str, conn: Any) -> None:
    raise_fd_limit()
    asyncio.run(_client_main(urls, token, conn))


async def _client_main(urls: list[str], token: str, conn: Any) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    auth = orjson.dumps({"type": "auth", "token": token, "window_seconds": 0}).decode()
    sockets = []

    async def open_one(url: str) -> Any:
        ws = await connect(url, ping_interval=None, open_timeout=120, max_size=1 << 22)
        await ws.send(auth)
        while b"history_end" not in (msg := await ws.recv(decode=False)):
            del msg
        return ws

    for i in range(0, len(urls), 200):
        sockets += await asyncio.gather(*(open_one(u) for u in urls[i : i + 200]))
    conn.send(("ready", len(sockets)))

    async def count(ws: Any, n: int) -> None:
        got = 0
        while got < n:
            if b'"metrics"' in await ws.recv(decode=False):
                got += 1

    async def latency(ws: Any, n: int, out: list[float]) -> None:
        got = 0
        while got < n:
            raw = await ws.recv(decode=False)
            now = time.time()
            frame = orjson.loads(raw)
            if frame.get("type") == "metrics":
                ts = datetime.fromisoformat(frame["data"]["timestamp"]).timestamp()
                out.append((now - ts) * 1000)
                got += 1

    while True:
        command, n = await loop.run_in_executor(None, conn.recv)
        if command == "count":
            await asyncio.gather(*(count(ws, n) for ws in sockets))
            conn.send(("done", time.time()))
        elif command == "latency":
            lat: list[float] = []
            await asyncio.gather(*(latency(ws, n, lat) for ws in sockets))
            conn.send(("lat", lat))
        else:
            for ws in sockets:
                await ws.close()
            conn.send(("closed", 0))
            return


class Clients:
    def __init__(self, urls: list[str], token: str, procs: int) -> None:
        self.pipes = []
        self.procs = []
        ctx = mp.get_context("spawn")
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=client_proc, args=(urls[i::procs], token, child), daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    def ask(self, command: str, n: int = 0) -> list[Any]:
        for p in self.pipes:
            p.send((command, n))
        return [p.recv()[1] for p in self.pipes]

    def ready(self) -> int:
        return sum(p.recv()[1] for p in self.pipes)

    def stop(self) -> None:
        self.ask("close")
        for p in self.procs:
            p.join(30)


# --- the run ------------------------------------------------------------------------------------


def wait_port(port: int, within: float = 60) -> None:
    import socket

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def publish(prefix: str, servers: list[uuid.UUID], per_server: int, rate: float | None) -> None:
    from aiokafka import AIOKafkaProducer

    from schemas import topics
    from schemas.canonical import MetricSample

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, enable_idempotence=True, acks="all", linger_ms=2)
    await producer.start()
    try:
        futures = []
        for n in range(per_server):
            for s in servers:
                now = datetime.now(UTC)
                sample = MetricSample(
                    server_id=s, time=now, received_at=now, seq=n, cpu_percent=n % 100, memory_percent=50
                )
                futures.append(
                    await producer.send(
                        topics.METRICS.name(prefix), sample.to_bytes(), key=topics.server_key(s)
                    )
                )
                if rate:
                    await asyncio.sleep(1 / rate)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20, help="samples per server in the throughput phase")
    parser.add_argument("--rate", type=float, default=20.0, help="samples/s in the latency phase")
    parser.add_argument("--steady-samples", type=int, default=10, help="samples per server, latency phase")
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    raise_fd_limit()

    from ops import migrate
    from ops.topics import ensure_topics
    from schemas import tokens
    from tests.support.topics import delete_topics

    name = f"bench_live_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-live-{uuid.uuid4().hex[:8]}."
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rpartition("/")[0] + "/" + name
    children: list[subprocess.Popen[bytes]] = []
    try:
        migrate.apply(dsn)
        asyncio.run(ensure_topics(KAFKA, prefix, 12))
        owner = uuid.uuid4()
        servers = [uuid.uuid4() for _ in range(args.servers)]
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
                      (owner, f"{owner.hex}@bench", owner.hex))  # fmt: skip
            for s in servers:
                c.execute("INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, 'b')", (s, owner))
        token, _ = tokens.encode(SECRET, owner, "access", timedelta(hours=2))
        results: dict[str, Any] = {"sockets": args.sockets, "servers": args.servers}

        # The raw baseline first.
        raw_port = free_port()
        raw = subprocess.Popen(
            [sys.executable, "-c", f"from bench.live_fanout import serve_raw; serve_raw({raw_port})"],
            stdin=subprocess.PIPE,
        )
        children.append(raw)
        wait_port(raw_port)
        clients = Clients([f"ws://127.0.0.1:{raw_port}/"] * args.sockets, token, args.client_procs)
        clients.ready()
        start = time.time()
        assert raw.stdin is not None
        raw.stdin.write(f"burst {args.burst}\n".encode())
        raw.stdin.flush()
        done = max(clients.ask("count", args.burst))
        results["raw_deliveries_per_s"] = args.sockets * args.burst / (done - start)
        clients.stop()
        raw.terminate()

        # FleetPulse: one API process.
        port = free_port()
        api = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from bench.live_fanout import serve_api; serve_api({port}, {dsn!r}, {prefix!r})",
            ]
        )
        children.append(api)
        wait_port(port)
        base_rss = settled_rss_mb(api.pid)
        urls = [
            f"ws://127.0.0.1:{port}/api/v1/ws/metrics/{servers[i % args.servers]}"
            for i in range(args.sockets)
        ]
        t0 = time.time()
        clients = Clients(urls, token, args.client_procs)
        connected = clients.ready()
        results["connect_seconds"] = round(time.time() - t0, 1)
        with_sockets = settled_rss_mb(api.pid)
        results["rss_mb_idle_api"] = round(base_rss, 1)
        results["rss_mb_with_sockets"] = round(with_sockets, 1)
        results["kb_per_socket"] = kb_per_socket(with_sockets - base_rss, connected)
        start = time.time()
        asyncio.run(publish(prefix, servers, args.burst, None))
        done = max(clients.ask("count", args.burst))
        results["deliveries_per_s"] = round(args.sockets * args.burst / (done - start))
        results["ratio_to_raw"] = round(results["deliveries_per_s"] / results["raw_deliveries_per_s"], 3)
        results["raw_deliveries_per_s"] = round(results["raw_deliveries_per_s"])
        for p in clients.pipes:
            p.send(("latency", args.steady_samples))
        asyncio.run(publish(prefix, servers, args.steady_samples, args.rate))
        lat = sorted(x for p in clients.pipes for x in p.recv()[1])
        results["steady_rate_samples_per_s"] = args.rate
        results["steady_deliveries_per_s"] = args.rate * args.sockets / args.servers
        results["latency_ms_p50"] = round(statistics.median(lat), 1)
        results["latency_ms_p99"] = round(lat[int(len(lat) * 0.99) - 1], 1)
        clients.stop()
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    finally:
        for child in children:
            child.terminate()
            child.wait(30)
        asyncio.run(delete_topics(KAFKA, prefix))
        with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
