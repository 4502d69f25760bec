"""The reference agent's own CPU and memory at its default interval (5 s), next to two baselines
measured in the same run: a bare Python interpreter (memory floor) and a raw psutil loop that
collects the same readings at the same interval with no spool and no socket (CPU floor).

    .venv/bin/python -m bench.agent_footprint [--seconds 120] [--interval 5]

The agent runs as a subprocess (`python -m fleetpulse_agent run`, its real entry point) against a small
acking WebSocket server in this process (the agent's work is the same whatever answers the acks;
a real ingest would only add its own cost to the machine). Nothing else is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from websockets.asyncio.server import ServerConnection, serve

from schemas.agent_wire import AGENT_FRAME, AckFrame, AuthSuccessFrame, PongFrame

RAW_LOOP = """
import sys, time, psutil
interval = float(sys.argv[1])
psutil.cpu_percent(None)
procs = {}
while True:
    psutil.virtual_memory(); psutil.disk_partitions(); psutil.net_io_counters(pernic=True)
    for p in psutil.disk_partitions():
        try: psutil.disk_usage(p.mountpoint)
        except OSError: pass
    seen = {}
    for p in psutil.process_iter():
        p = procs.get(p.pid, p)
        try:
            p.cpu_percent(None); p.name(); p.memory_percent(); p.username(); p.status()
        except psutil.Error:
            continue
        seen[p.pid] = p
    procs = seen
    time.sleep(interval)
"""


async def acking_server(ws: ServerConnection) -> None:
    import uuid

    await ws.recv()
    await ws.send(AuthSuccessFrame(server_id=uuid.uuid4()).to_bytes().decode())
    frames = 0
    async for raw in ws:
        frame = AGENT_FRAME.validate_json(raw)
        seq = getattr(frame, "seq", None)
        if frame.type == "ping":
            await ws.send(PongFrame().to_bytes().decode())
        elif seq is not None:
            frames += 1
            await ws.send(AckFrame(seq=seq).to_bytes().decode())


def measure(proc: subprocess.Popen[bytes], seconds: float, warmup: float) -> tuple[float, float, float]:
    """(CPU % of one core, mean RSS MiB, peak RSS MiB) of `proc` over `seconds` after `warmup`."""
    p = psutil.Process(proc.pid)
    time.sleep(warmup)
    t0 = time.monotonic()
    c0 = sum(p.cpu_times()[:2])
    rss: list[int] = []
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            raise SystemExit(f"the measured process exited with {proc.returncode}")
        rss.append(p.memory_info().rss)
        time.sleep(0.5)
    cpu = (sum(p.cpu_times()[:2]) - c0) / (time.monotonic() - t0) * 100
    return cpu, sum(rss) / len(rss) / 2**20, max(rss) / 2**20


async def main_async(args: argparse.Namespace) -> None:
    server = await serve(acking_server, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "FLEETPULSE_AGENT_SERVER_URL": f"ws://127.0.0.1:{port}",
            "FLEETPULSE_AGENT_API_KEY": "fpk_bench",
            "FLEETPULSE_AGENT_STATE_DIR": str(Path(tmp) / "agent"),
            "FLEETPULSE_AGENT_INTERVAL_SECONDS": str(args.interval),
            "FLEETPULSE_AGENT_STARTUP_JITTER_SECONDS": "0",
        }
        results: dict[str, tuple[float, float, float]] = {}
        runs = {
            "bare python": [sys.executable, "-c", "import time; time.sleep(100000)"],
            "raw psutil loop": [sys.executable, "-c", RAW_LOOP, str(args.interval)],
            "fleetpulse-agent": [sys.executable, "-m", "fleetpulse_agent", "run"],
        }
        for name, argv in runs.items():
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                results[name] = await loop.run_in_executor(None, measure, proc, args.seconds, args.warmup)
            finally:
                proc.terminate()
                proc.wait(20)
    server.close()
    await server.wait_closed()
    print(f"interval {args.interval:g} s, measured {args.seconds:g} s after {args.warmup:g} s warm-up")
    print(f"{'process':<18} {'CPU % of a core':>16} {'RSS MiB (mean)':>15} {'RSS MiB (peak)':>15}")
    for name, (cpu, rss, peak) in results.items():
        print(f"{name:<18} {cpu:16.2f} {rss:15.1f} {peak:15.1f}")
    agent, raw, bare = results["fleetpulse-agent"], results["raw psutil loop"], results["bare python"]
    print(f"agent CPU / raw psutil loop CPU: {agent[0] / max(raw[0], 1e-6):.2f}")
    print(f"agent RSS / bare interpreter RSS: {agent[1] / bare[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=5.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
