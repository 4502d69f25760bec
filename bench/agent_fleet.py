"""How many simulated agents one simulator process drives: for a rising number of agents, the
frames per second acknowledged by the server against the rate the fleet should produce, and the
simulator's CPU and memory. Each agent has its own real socket, spool and seq numbers.

    .venv/bin/python -m bench.agent_fleet [--agents 250 500 1000 2000] [--seconds 60] [--interval 5]

The server is a small acking WebSocket server in a separate process (so the simulator's cost is
measured alone, and a real ingest's capacity does not cap the answer: bench/ingest_throughput.py
measures that). Baseline in the same run: a raw loop of plain websockets clients sending the same
frames at the same rate with nothing else, so the simulator's CPU reads as a ratio to it.

A fleet size counts as driven when at least 97 % of the expected frames were acknowledged and the
simulator used less than 90 % of one core.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

RAW_CLIENTS = """
import asyncio, random, sys, uuid, orjson
from datetime import UTC, datetime
from websockets.asyncio.client import connect
n, interval, url = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
async def one(i):
    async with connect(url, max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "api_key": f"k{i}"}).decode()); await ws.recv()
        await asyncio.sleep(random.uniform(0, interval))
        seq = 0
        async def reader():
            async for _ in ws: pass
        asyncio.ensure_future(reader())
        while True:
            seq += 1
            now = datetime.now(UTC).isoformat()
            await ws.send(orjson.dumps({"type": "metrics", "seq": seq, "timestamp": now,
                "cpu_percent": random.uniform(0, 100), "memory_percent": 40.0,
                "disk_usage": [{"path": "/", "total": 1, "used": 1, "free": 0, "percent": 50.0}],
                "network": [{"interface": "eth0", "bytes_sent": seq, "bytes_recv": seq}]}).decode())
            await asyncio.sleep(interval)
async def main():
    await asyncio.gather(*(one(i) for i in range(n)))
asyncio.run(main())
"""


def serve(port_out: Any, counter: Any) -> None:
    import asyncio
    import contextlib
    import uuid

    import orjson
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # clients are terminated between rounds
            await answer(ws)

    async def answer(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(orjson.dumps({"type": "auth_success", "server_id": str(uuid.uuid4())}).decode())
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") == "ping":
                await ws.send('{"type":"pong"}')
            elif frame.get("type") == "metrics":
                with counter.get_lock():
                    counter.value += 1
                if "seq" in frame:
                    await ws.send(orjson.dumps({"type": "ack", "seq": frame["seq"]}).decode())
            elif "seq" in frame:
                await ws.send(orjson.dumps({"type": "ack", "seq": frame["seq"]}).decode())

    async def main() -> None:
        server = await ws_serve(handler, "127.0.0.1", 0, max_size=None, backlog=4096)
        port_out.put(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()

    asyncio.run(main())


def spread(agents: int) -> float:
    """The simulator's start spread: about 100 new connections a second, as a fleet arriving."""
    return max(5.0, agents / 100)


def run_one(argv: list[str], counter: Any, agents: int, args: argparse.Namespace) -> dict[str, float]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p = psutil.Process(proc.pid)
        # Measured once every agent had time to connect and replay its first samples.
        time.sleep(spread(agents) + args.warmup)
        c0, n0, t0 = sum(p.cpu_times()[:2]), counter.value, time.monotonic()
        rss = []
        while time.monotonic() - t0 < args.seconds:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[2:4]} exited with {proc.returncode}")
            rss.append(p.memory_info().rss)
            time.sleep(1)
        wall = time.monotonic() - t0
        cpu = (sum(p.cpu_times()[:2]) - c0) / wall * 100
        got = (counter.value - n0) / wall
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    expected = agents / args.interval
    return {"cpu": cpu, "rate": got, "expected": expected, "rss": max(rss) / 2**20}


# --- the load generator of `make bench` (capacity, end to end) ---------------------------------
#
# Lean agents on real sockets, many per process, in worker processes of their own: each opens its
# socket (a legacy agent first asks the key pre-flight, as the ChatOps agent does before every
# connect), authenticates, sends a frame every `interval` seconds at its own phase, and times
# each frame from its send to its ack. An agent whose oldest frame waits longer than
# `ack_deadline` for its ack counts every frame it waits for as missing and reconnects (what both
# real agents do). `interval` 0: as fast as acks come back, `window` frames in flight (the
# maximum of the end-to-end scenario).

PROCESS_NAMES = ("python3", "postgres", "nginx", "node", "java", "redis-server", "sshd", "cron",
                 "systemd", "dockerd", "containerd", "rsyslogd", "bash", "gunicorn", "celery",
                 "haproxy", "chronyd", "journald", "snapd", "agetty")  # fmt: skip


def seed_template(i: int) -> dict[str, Any]:
    """The reference agent's metrics frame (fleetpulse_agent.wire), with its top processes."""
    import random

    from fleetpulse_agent.simulator import Walk
    from fleetpulse_agent.wire import Process

    frame = Walk.new(random.Random(i)).step(5.0)
    procs = [
        Process(pid=100 + n, name=name, cpu_percent=float(20 - n), memory_percent=1.5,
                memory_rss_bytes=(50 + n) << 20, user="app", status="sleeping")
        for n, name in enumerate(PROCESS_NAMES)
    ]  # fmt: skip
    d: dict[str, Any] = type(frame).to_dict(frame)
    d["top_processes"] = [p.__dict__ for p in procs]
    return d


def legacy_template(server_id: str) -> dict[str, Any]:
    """A ChatOps agent's frame (docs: the legacy dialect): ~2.3 KB with 20 processes."""
    return {
        "type": "metrics",
        "data": {
            "server_id": server_id,
            "timestamp": "",
            "cpu": {"usage_percent": 12.5, "cores": 4, "frequency_mhz": 2400},
            "memory": {"total_gb": 15.54, "used_gb": 6.21, "available_gb": 8.97, "usage_percent": 39.9},
            "disk": {"total_gb": 97.87, "used_gb": 41.3, "available_gb": 51.55, "usage_percent": 44.5},
            "network": {"bytes_sent": 123456789, "bytes_recv": 987654321, "packets_sent": 345678,
                        "packets_recv": 456789},
            "containers": None,
            "processes": [
                {"pid": 1000 + n, "name": name, "cpu": round(20 / (n + 1), 1), "memory": 85.4 - n,
                 "status": "sleep", "user": "www-data"}
                for n, name in enumerate(PROCESS_NAMES)
            ],
        },
    }  # fmt: skip


@dataclass
class LoadConfig:
    url: str
    dialect: str = "seed"  # seed | legacy
    interval: float = 5.0  # seconds between frames; 0: flat out with `window` in flight
    window: int = 32
    ack_deadline: float = 5.0
    watched: int = 0  # the first N agents of each worker report their send times (live latency)
    connect_rate: float = 200.0  # new sockets per second, per worker


@dataclass
class LoadStats:
    sent: int = 0
    acked: int = 0
    missing: int = 0
    refused: int = 0
    failed_connects: int = 0
    drops: int = 0
    latencies: list[float] = field(default_factory=list)
    watched_sends: list[tuple[str, int, float]] = field(default_factory=list)  # server, ts ms, sent


def _worker(conn: Any, agents: list[tuple[str, str]], cfg: LoadConfig) -> None:
    import uvloop

    uvloop.run(_worker_main(conn, agents, cfg))


async def _worker_main(conn: Any, agents: list[tuple[str, str]], cfg: LoadConfig) -> None:
    import asyncio
    import collections
    import random
    from datetime import UTC, datetime, timedelta, timezone

    import aiohttp
    import orjson
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    stats = LoadStats()
    running: list[asyncio.Task[None]] = []
    http_base = cfg.url.replace("ws://", "http://").rpartition("/api/v1/")[0]
    local = timezone(timedelta(hours=2))  # ChatOps sends the host's offset
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    async def agent(index: int, key: str, server_id: str) -> None:
        rng = random.Random(index)
        watched = index < cfg.watched
        template = legacy_template(server_id) if cfg.dialect == "legacy" else seed_template(index)
        seq = 0

        async def connected(ws: Any) -> int:
            """One socket's life: frames out, acks in, until it drops; the frames left unacked."""

            pending: collections.OrderedDict[int, float] = collections.OrderedDict()
            credit = asyncio.Semaphore(cfg.window)

            async def receive() -> None:
                async for raw in ws:
                    msg = orjson.loads(raw)
                    kind = msg.get("type")
                    if kind == "ack" or kind == "metrics_received":
                        if kind == "ack":
                            sent = pending.pop(msg.get("seq"), None)
                        else:
                            sent = pending.popitem(last=False)[1] if pending else None
                        if sent is not None:
                            stats.acked += 1
                            stats.latencies.append(time.time() - sent)
                            credit.release()
                    elif kind == "error" and msg.get("seq") in pending:
                        pending.pop(msg["seq"])
                        stats.refused += 1
                        credit.release()

            async def watchdog() -> None:
                while True:
                    await asyncio.sleep(1)
                    if pending and time.time() - next(iter(pending.values())) > cfg.ack_deadline:
                        stats.missing += len(pending)
                        pending.clear()
                        return

            async def send() -> None:
                nonlocal seq
                if cfg.interval:
                    await asyncio.sleep(rng.uniform(0, cfg.interval))
                while True:
                    await credit.acquire()
                    seq += 1
                    now = time.time()
                    if cfg.dialect == "legacy":
                        stamp = datetime.fromtimestamp(now, local).replace(microsecond=0)
                        template["data"]["timestamp"] = stamp.isoformat()
                        template["data"]["cpu"]["usage_percent"] = rng.uniform(0, 80)
                        ts_ms = int(stamp.timestamp()) * 1000
                    else:
                        stamp = datetime.fromtimestamp(now, UTC)
                        template["timestamp"], template["seq"] = stamp.isoformat(), seq
                        template["cpu_percent"] = round(rng.uniform(0, 80), 2)
                        ts_ms = round(stamp.timestamp() * 1000)
                    pending[seq] = now
                    await ws.send(orjson.dumps(template).decode())
                    stats.sent += 1
                    if watched:
                        stats.watched_sends.append((server_id, ts_ms, now))
                    if cfg.interval:
                        await asyncio.sleep(cfg.interval - (time.time() - now))

            tasks = [asyncio.ensure_future(c) for c in (receive(), watchdog(), send())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await ws.close()
            return len(pending)

        await asyncio.sleep(rng.uniform(0, 1))
        while True:
            if cfg.dialect == "legacy":
                try:
                    async with session.get(
                        f"{http_base}/api/v1/api-keys/me", headers={"X-API-Key": key}
                    ) as r:
                        if r.status != 200:
                            raise OSError(f"pre-flight {r.status}")
                except (OSError, aiohttp.ClientError, TimeoutError):
                    stats.failed_connects += 1
                    await asyncio.sleep(rng.uniform(1, 5))
                    continue
            try:
                ws = await connect(cfg.url, open_timeout=20, ping_interval=None, max_size=1 << 22)
                await ws.send(orjson.dumps({"type": "auth", "api_key": key}).decode())
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
                if reply.get("type") != "auth_success":
                    raise OSError(f"auth answered {reply}")
            except Exception:  # any failed connect is counted, whatever it raised
                stats.failed_connects += 1
                await asyncio.sleep(rng.uniform(1, 5))
                continue
            stats.missing += await connected(ws)
            stats.drops += 1
            await asyncio.sleep(rng.uniform(1, 5))

    async def grow(target: int) -> None:
        while len(running) < min(target, len(agents)):
            i = len(running)
            running.append(asyncio.ensure_future(agent(i, *agents[i])))
            await asyncio.sleep(1 / cfg.connect_rate)

    grower: asyncio.Future[None] | None = None
    while True:
        command, arg = await loop.run_in_executor(None, conn.recv)
        if command == "config":  # the running agents read cfg at every frame: a new pace at once
            for name, value in arg.items():
                setattr(cfg, name, value)
            conn.send(("ok", None))
        elif command == "target":
            grower = asyncio.ensure_future(grow(arg))
            conn.send(("ok", None))
        elif command == "collect":
            if arg and grower is not None:
                await grower
            out = stats
            stats = LoadStats()
            conn.send(("stats", out))
        else:
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await session.close()
            conn.send(("stopped", None))
            return


class FleetLoad:
    """`procs` worker processes sharing `agents` round robin; `target(n)` grows the fleet to n."""

    def __init__(self, agents: list[tuple[str, str]], cfg: LoadConfig, procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, agents[i::procs], cfg), daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _ask(self, command: str, arg: Any) -> list[Any]:
        for p in self.pipes:
            p.send((command, arg))
        return [p.recv()[1] for p in self.pipes]

    def configure(self, **changes: Any) -> None:
        """Change the running agents' pace (`interval`, `ack_deadline`); `window` is per socket."""
        self._ask("config", changes)

    def target(self, agents: int) -> None:
        n = len(self.pipes)
        for i, p in enumerate(self.pipes):
            p.send(("target", agents // n + (1 if i < agents % n else 0)))
        for p in self.pipes:
            p.recv()

    def collect(self, wait_grown: bool = False) -> LoadStats:
        """What every worker counted since the last collect (after the fleet grew, if asked)."""
        total = LoadStats()
        for s in self._ask("collect", wait_grown):
            for name in ("sent", "acked", "missing", "refused", "failed_connects", "drops"):
                setattr(total, name, getattr(total, name) + getattr(s, name))
            total.latencies += s.latencies
            total.watched_sends += s.watched_sends
        return total

    def stop(self) -> None:
        self._ask("stop", None)
        for p in self.procs:
            p.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=25.0, help="seconds after the start spread")
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    ports: Any = multiprocessing.Queue()
    counter = multiprocessing.Value("q", 0)
    server = multiprocessing.Process(target=serve, args=(ports, counter), daemon=True)
    server.start()
    port = ports.get(timeout=30)
    url = f"ws://127.0.0.1:{port}/api/v1/agents/ws"
    print(
        f"interval {args.interval:g} s; {args.seconds:g} s measured, {args.warmup:g} s after the start spread"
    )
    print(
        f"{'agents':>7} {'what':<10} {'frames/s':>9} {'expected':>9} {'CPU % core':>11} {'peak RSS MiB':>13}"
    )
    driven = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.agents:
            keys = Path(tmp) / f"keys-{n}.txt"
            keys.write_text("".join(f"fpk_sim_{i}\n" for i in range(n)))
            sim = [
                sys.executable,
                "-m",
                "fleetpulse_agent",
                "simulate",
                "--agents",
                str(n),
                "--keys-file",
                str(keys),
            ]
            sim += ["--server-url", url, "--interval", str(args.interval), "--churn-seconds", "0"]
            sim += ["--startup-spread", str(spread(n)), "--report-seconds", "3600"]
            raw = [sys.executable, "-c", RAW_CLIENTS, str(n), str(args.interval), url]
            r_raw = run_one(raw, counter, n, args)
            r_sim = run_one(sim, counter, n, args)
            for what, r in (("raw", r_raw), ("simulator", r_sim)):
                rates = f"{r['rate']:9.1f} {r['expected']:9.1f}"
                print(f"{n:>7} {what:<10} {rates} {r['cpu']:11.1f} {r['rss']:13.1f}")
            print(f"{'':>7} simulator CPU / raw CPU: {r_sim['cpu'] / max(r_raw['cpu'], 1e-6):.2f}")
            if r_sim["rate"] >= 0.97 * r_sim["expected"] and r_sim["cpu"] < 90:
                driven = n
    print(f"one simulator process drives at least {driven} agents at a {args.interval:g} s interval")
    server.terminate()
    os._exit(0)  # the server process and its queue feeder thread need no orderly goodbye


if __name__ == "__main__":
    main()
