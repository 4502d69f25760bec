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
