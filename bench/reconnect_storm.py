"""Reconnect storm: 2,000 agents connected to one ingest process, which restarts. How long until
every agent is back, how evenly they come back, and whether the data of agents already back keeps
flowing while the others reconnect.

    .venv/bin/python -m bench.reconnect_storm [--agents 2000] [--client-procs 2] [--runs 3] [--json PATH]

The agents are the reference agent's own connection code (`fleetpulse_agent.connection`: spool,
acks, replay, reconnect backoff with full jitter), many per process over memory spools, in
`--client-procs` processes; each samples every `--interval` seconds. Ingest is a real process
(`python -m ingest`) on the shared Kafka and PostgreSQL, in a database and a topic namespace of
its own. Each run restarts it (SIGTERM: it closes every socket with 1001, then a new process
starts on the same port, as a service manager restarts it) and measures, per run:

- `all_back_s`: from the restart to the moment the last agent is authenticated again (goal < 60);
- `peak_over_mean`: reconnections in the busiest second after the new process answered, over the
  mean rate from then until the last one was back (goal < 3: no thundering herd);
- `live_p99_ms` / `steady_p99_ms`: sample-to-ack latency of the live samples taken, during the
  catch-up, by agents already back, against the same agents' latency before the restart (their
  ratio is the figure: the others' reconnecting must not stall them), and `live_acked`: the
  fraction of those samples acknowledged.

Figures are medians over the runs; the machine is shared, so the load is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.ingest_throughput import ADMIN_DSN, BOOTSTRAP, create_keys, free_port
from bench.result import StageResult, print_table, service_versions
from ops import migrate
from ops.topics import ensure_topics
from tests.support.topics import delete_topics

# ---- the client processes: many reference agents each --------------------------------------


def _client(keys_file: Path, url: str, out: Path, status: Path, stop_file: Path, interval: float) -> None:
    from websockets.asyncio.client import ClientConnection

    from fleetpulse_agent.connection import AgentConnection, ConnectionConfig
    from fleetpulse_agent.runner import spool_metrics
    from fleetpulse_agent.simulator import Walk
    from fleetpulse_agent.spool import MemorySpool

    class Spool(MemorySpool):
        def __init__(self) -> None:
            super().__init__(100_000)
            self.sampled: dict[int, float] = {}
            self.acked: dict[int, float] = {}

        async def ack(self, seqs: Iterable[int]) -> int:
            seqs = list(seqs)
            now = time.time()
            for s in seqs:
                self.acked.setdefault(s, now)
            return await super().ack(seqs)

    class Timed(AgentConnection):
        connects: list[float]

        async def _authenticate(self, ws: ClientConnection) -> str:
            server_id = await super()._authenticate(ws)
            self.connects.append(time.time())
            return server_id

    stopped: dict[str, str] = {}  # agents whose connection loop ended with an error, and why

    async def agent(key: str, stop: asyncio.Event, conns: list[Timed], spools: list[Spool]) -> None:
        rng = random.Random(key)
        spool = Spool()
        conn = Timed(ConnectionConfig(url=url, api_key=key), spool, name=key[:12])
        conn.connects = []
        conns.append(conn)
        spools.append(spool)
        walk = Walk.new(rng)

        async def sample() -> None:
            await asyncio.sleep(rng.uniform(0, interval))
            while not stop.is_set():
                seq = await spool_metrics(spool, conn, walk.step(interval))
                spool.sampled[seq] = time.time()
                await asyncio.sleep(interval)

        await asyncio.sleep(rng.uniform(0, 20))  # the fleet's first connects, spread
        sampler = asyncio.create_task(sample())
        try:
            await conn.run_forever(stop)
        except Exception as exc:
            # Superseded or a refused key stops a real agent for good: counted, not hidden.
            stopped[key] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            sampler.cancel()

    async def main() -> None:
        keys = keys_file.read_text().split()
        stop = asyncio.Event()
        conns: list[Timed] = []
        spools: list[Spool] = []
        stopped.clear()
        tasks = [asyncio.create_task(agent(k, stop, conns, spools)) for k in keys]
        while not stop_file.exists():
            doc = {
                "agents": len(keys),
                "connected": sum(c.stats.connected for c in conns),
                "connects": sum(len(c.connects) for c in conns),
                "stopped": len(stopped),
                "stopped_why": sorted({why.split(":")[0] for why in stopped.values()}),
            }
            tmp = status.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(status)
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        result = [
            {
                "connects": c.connects,
                "frames": [[t, s.acked.get(seq)] for seq, t in s.sampled.items()],
            }
            for c, s in zip(conns, spools, strict=True)
        ]
        out.write_text(json.dumps(result))

    asyncio.run(main())


# ---- the measurement ------------------------------------------------------------------------


def _status(paths: list[Path]) -> dict[str, int]:
    total = {"agents": 0, "connected": 0, "connects": 0, "stopped": 0}
    for p in paths:
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(p.read_text())
            for k in total:
                total[k] += int(doc[k])
    return total


async def _wait(predicate: Any, within: float, what: str, describe: Any = lambda: "") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out after {within:.0f} s waiting for {what}")


def _ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def _healthy(port: int, within: float = 60.0) -> float:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health", timeout=1)).status_code == 200:
                    return time.time()
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("ingest did not answer /health")


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def analyse(agents: list[dict[str, Any]], restart: float, up: float, steady_from: float) -> dict[str, float]:
    back = []
    for a in agents:
        after = [t for t in a["connects"] if t > restart]
        back.append(min(after) if after else float("inf"))
    last = max(back)
    bins: dict[int, int] = {}
    for t in back:
        if t != float("inf"):
            bins[int(max(0.0, t - up))] = bins.get(int(max(0.0, t - up)), 0) + 1
    span = max(1.0, last - up)
    mean = len(agents) / span
    live, steady, live_sent, live_acked = [], [], 0, 0
    for a, b in zip(agents, back, strict=True):
        for sampled, acked in a["frames"]:
            if steady_from <= sampled < restart - 1 and acked is not None:
                steady.append(acked - sampled)
            if b < sampled <= last:  # taken live by an agent already back, during the catch-up
                live_sent += 1
                if acked is not None:
                    live_acked += 1
                    live.append(acked - sampled)
    return {
        "all_back_s": last - restart,
        "up_s": up - restart,
        "peak_per_s": float(max(bins.values())) if bins else 0.0,
        "mean_per_s": mean,
        "peak_over_mean": (max(bins.values()) / mean) if bins else float("nan"),
        "live_samples": float(live_sent),
        "live_acked": live_acked / live_sent if live_sent else float("nan"),
        "live_p50_ms": _p(live, 0.5) * 1000,
        "live_p99_ms": _p(live, 0.99) * 1000,
        "steady_p50_ms": _p(steady, 0.5) * 1000,
        "steady_p99_ms": _p(steady, 0.99) * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between an agent's samples")
    parser.add_argument("--runs", type=int, default=3, help="restarts, one measurement each (medians)")
    parser.add_argument("--steady", type=float, default=15.0, help="seconds of steady flow around restarts")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON (bench/README.md)")
    args = parser.parse_args()

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    database = f"fp_bench_{uuid.uuid4().hex[:8]}"
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{database}"
    pepper = secrets.token_urlsafe(48)
    work = Path(tempfile.mkdtemp(prefix="storm-"))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    ingest: subprocess.Popen[bytes] | None = None
    clients: list[subprocess.Popen[bytes]] = []
    stop_file = work / "stop"
    try:
        migrate.apply(dsn)
        await ensure_topics(BOOTSTRAP, prefix, 12)
        keys = [k for k, _ in create_keys(dsn, pepper, args.agents)]
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
            "FLEETPULSE_STATE_DIR": str(work / "state"),
        }
        ingest = _ingest(env, work / "ingest.log")
        await _healthy(port)
        url = f"ws://127.0.0.1:{port}/api/v1/agents/ws"
        statuses, outs = [], []
        share = -(-len(keys) // args.client_procs)
        for i in range(args.client_procs):
            part = keys[i * share : (i + 1) * share]
            (work / f"keys-{i}").write_text("\n".join(part))
            statuses.append(work / f"status-{i}.json")
            outs.append(work / f"out-{i}.json")
            argv = [sys.executable, "-m", "bench.reconnect_storm", "--client", str(work / f"keys-{i}"), url]
            argv += [str(outs[-1]), str(statuses[-1]), str(stop_file), str(args.interval)]
            with (work / f"client-{i}.log").open("ab") as log:
                clients.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        n = len(keys)
        await _wait(
            lambda: _status(statuses)["connected"] == n,
            240,
            f"{n} agents connected",
            lambda: f"status of the clients: {_status(statuses)}",
        )
        print(f"{n} agents connected; steady for {args.steady:g} s", flush=True)
        marks: list[tuple[float, float, float]] = []  # (steady_from, restart, up)
        load = [os.getloadavg()[0]]
        for run in range(args.runs):
            steady_from = time.time()
            await asyncio.sleep(args.steady)
            before = _status(statuses)["connects"]
            restart = time.time()
            ingest.send_signal(signal.SIGTERM)
            await asyncio.to_thread(ingest.wait, 60)
            ingest = _ingest(env, work / "ingest.log")
            up = await _healthy(port)
            await _wait(
                lambda before=before: (
                    (s := _status(statuses))["connects"] >= before + n and s["connected"] == n
                ),
                300,
                "every agent back",
                lambda: f"status of the clients: {_status(statuses)}",
            )
            marks.append((steady_from, restart, up))
            load.append(os.getloadavg()[0])
            print(f"run {run + 1}: restarted; all back after {time.time() - restart:.1f} s", flush=True)
        await asyncio.sleep(args.steady)  # the live flow after the last catch-up
        stop_file.touch()
        for c in clients:
            await asyncio.to_thread(c.wait, 120)
        agents: list[dict[str, Any]] = []
        for out in outs:
            agents += json.loads(out.read_text())
        result = StageResult(
            "reconnect_storm",
            {"agents": n, "client_procs": args.client_procs, "interval": args.interval, "runs": args.runs},
        )
        names = {
            "all_back_s": ("s", "all agents back after the restart", False, 60.0),
            "peak_over_mean": ("x", "reconnects: busiest second over the mean rate", False, 3.0),
            "up_s": ("s", "ingest restart (SIGTERM to /health answering)", False, None),
            "peak_per_s": ("/s", "reconnects in the busiest second", False, None),
            "live_acked": ("fraction", "live samples of agents already back acked", True, None),
            "live_p50_ms": ("ms", "their sample-to-ack latency, p50", False, None),
            "live_p99_ms": ("ms", "their sample-to-ack latency, p99", False, None),
            "steady_p50_ms": ("ms", "steady sample-to-ack latency, p50", False, None),
            "steady_p99_ms": ("ms", "steady sample-to-ack latency, p99", False, None),
        }
        figures = {
            name: result.figure(
                name,
                unit,
                label,
                higher_is_better=hib,
                goal=goal,
                limit="steady_p99_ms" if name == "live_p99_ms" else None,
            )
            for name, (unit, label, hib, goal) in names.items()
        }
        for steady_from, restart, up in marks:
            found = analyse(agents, restart, up, steady_from)
            for name, figure in figures.items():
                figure.runs.append(found[name])
            print(" ".join(f"{k}={v:.2f}" for k, v in found.items()))
        result.notes["load_average_around_runs"] = load
        print_table(result)
        print(f"load average (1 min) before and after each run: {', '.join(f'{x:.1f}' for x in load)}")
        if args.json:
            result.write(args.json, versions=await service_versions(dsn))
    finally:
        stop_file.touch()
        for c in clients:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.wait(60)
            if c.poll() is None:
                c.kill()
        if ingest is not None and ingest.poll() is None:
            ingest.terminate()
            ingest.wait(30)
        await delete_topics(BOOTSTRAP, prefix)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        print(f"logs: {work}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        k, u, o, s, stop, interval = sys.argv[2:8]
        _client(Path(k), u, Path(o), Path(s), Path(stop), float(interval))
    else:
        asyncio.run(main())
