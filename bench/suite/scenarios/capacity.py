"""Capacity: the largest fleet at the default 5 s interval that the stack `make run` starts (the API
with ingest in one process, the processors with the alert engine and the demo's rules) holds on
this machine, in the seed dialect and in the legacy (ChatOps) dialect.

A ramp of fleet sizes; at each, after the new agents connected and settled, several measurement
windows (the step's figures are the medians over the windows; counts are sums). A size is held
when: ack p99 < 1 s, no missing ack and no failed connect, persistence and alert lag < 10 s, and
live p99 (agent send to a browser socket's receive, for a sample of servers) < 1 s. The ramp stops
at the first size not held. The load generator (`bench/agent_fleet.py`) runs in processes of its
own and shares the machine's cores with the stack: its CPU is reported next to the stack's.
Same-run limit: the same generator against a bare acking WebSocket server at the largest size.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from typing import Any

from bench.agent_fleet import FleetLoad, LoadConfig, serve

from .. import profile
from ..browsers import Browsers, join, percentiles
from ..stack import CpuMeter, Lag, Stack, group_label
from ..stagebench import row

FULL_STEPS = [250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 10_000, 12_000]
SMOKE_STEPS = [10]
ACK_P99_MAX = 1.0
LAG_MAX = 10.0
LIVE_P99_MAX = 1.0


def estimate(smoke: bool) -> float:
    return 90 if smoke else 1500


def _sizes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"steps": SMOKE_STEPS, "procs": 1, "watched": 5, "settle": 5, "windows": 1, "window": 6}
    return {"steps": FULL_STEPS, "procs": 3, "watched": 34, "settle": 10, "windows": 3, "window": 15}


def run(ctx: Any) -> dict[str, Any]:
    size = _sizes(ctx.smoke)
    if ctx.reduced:
        size |= {"settle": 5, "windows": 2, "window": 10, "profile_seconds": 5}
    if ctx.capacity_steps:
        size["steps"] = sorted(ctx.capacity_steps)
    dialects = {d: ramp(ctx, d, size) for d in ("seed", "legacy")}
    top = max(r["agents"] for d in dialects.values() for r in d["steps"])
    ctx.step(f"same-run limit: the generator against a bare acking server, {top} agents")
    raw = bare_limit(ctx, top, size)
    summary = []
    for dialect, result in dialects.items():
        held = result["held"]
        limit = float(top) if raw["held"] else None
        summary.append(
            row(
                f"capacity, {dialect} dialect (agents at 5 s)",
                float(held),
                "agents",
                limit,
                f"bare acking server, same generator ({raw['ack_p99'] * 1000:.0f} ms p99 at {top})",
            )
        )
    return {"dialects": dialects, "bare": raw, "summary": summary, "criteria": criteria(), "sizes": size}


def criteria() -> dict[str, float]:
    return {"ack_p99_s": ACK_P99_MAX, "lag_s": LAG_MAX, "live_p99_s": LIVE_P99_MAX}


def ramp(ctx: Any, dialect: str, size: dict[str, Any]) -> dict[str, Any]:
    stack = ctx.open_stack(f"capacity-{dialect}")
    steps: list[dict[str, Any]] = []
    try:
        fleet = stack.provision(max(size["steps"]))
        cfg = LoadConfig(url=stack.agent_url, dialect=dialect, watched=size["watched"], connect_rate=100)
        load = FleetLoad(fleet.agents, cfg, size["procs"])
        watched = [
            a[1] for i in range(size["procs"]) for a in fleet.agents[i :: size["procs"]][: size["watched"]]
        ]
        browsers = Browsers(stack.api_url, fleet.token, watched)
        groups = {**{n: [p] for n, p in stack.pids().items()}, **ctx.services.pids()}
        groups |= {"load generator": load.pids, "browser sockets": [browsers.proc.pid]}
        cpu = CpuMeter(groups)
        lag = Lag(ctx.services.bootstrap, stack.prefix, f"{stack.prefix}fleetpulse.metrics.v1")
        try:
            for n in size["steps"]:
                result = step(ctx, dialect, n, size, load, browsers, cpu, lag, stack)
                steps.append(result)
                if not result["held"]:
                    break
        finally:
            load.stop()
            browsers.stop()
    finally:
        ctx.close_stack(stack)
    held = max([s["agents"] for s in steps if s["held"]], default=0)
    bound: list[str] = next((s["failed"] for s in steps if not s["held"]), [])
    return {"steps": steps, "held": held, "first_failure": bound}


def step(
    ctx: Any,
    dialect: str,
    n: int,
    size: dict[str, Any],
    load: FleetLoad,
    browsers: Browsers,
    cpu: CpuMeter,
    lag: Lag,
    stack: Stack,
) -> dict[str, Any]:
    ctx.step(f"{dialect}: {n} agents: connecting")
    load.target(n)
    began = load.collect(wait_grown=True)
    time.sleep(size["settle"])
    settled = load.collect()
    sends = began.watched_sends + settled.watched_sends
    browsers.collect()
    cpu.read()
    windows = []
    for w in range(size["windows"]):
        lags: dict[str, float] = {}
        end = time.monotonic() + size["window"]
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            for group, seconds in asyncio.run(lag.read()).items():
                label = group_label(group)
                lags[label] = max(lags.get(label, 0.0), seconds)
        s = load.collect()
        received = browsers.collect()
        live = join(sends + s.watched_sends, received)
        sends = s.watched_sends
        acks = percentiles(s.latencies)
        windows.append(
            {
                "sent": s.sent,
                "acked": s.acked,
                "missing": s.missing,
                "refused": s.refused,
                "failed_connects": s.failed_connects,
                "drops": s.drops,
                "ack_p50": acks["p50"],
                "ack_p95": acks["p95"],
                "ack_p99": acks["p99"],
                "live": percentiles(live),
                "live_frames": len(live),
                "lag": lags,
                "cpu": cpu.read(),
            }
        )
        ctx.step(
            f"{dialect}: {n} agents: window {w + 1}/{size['windows']}: ack p99 "
            f"{_ms(acks['p99'])}, live p99 {_ms(percentiles(live)['p99'])}, lag {lags}, missing {s.missing}"
        )
    result = summarize(
        n, windows, began.failed_connects + settled.failed_connects, began.missing + settled.missing
    )
    if not ctx.smoke:
        ctx.step(f"{dialect}: {n} agents: py-spy, {size.get('profile_seconds', 10)} s")
        result["profile"] = profile.record(stack.pids(), seconds=size.get("profile_seconds", 10))
    return result


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def _med(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(statistics.median(vs), 4) if vs else None


def summarize(n: int, windows: list[dict[str, Any]], early_failed: int, early_missing: int) -> dict[str, Any]:
    labels = {k for w in windows for k in w["lag"]}
    out: dict[str, Any] = {
        "agents": n,
        "windows": windows,
        "ack_p50": _med([w["ack_p50"] for w in windows]),
        "ack_p99": _med([w["ack_p99"] for w in windows]),
        "live_p99": _med([w["live"]["p99"] for w in windows]),
        "lag": {k: max(w["lag"].get(k, 0.0) for w in windows) for k in sorted(labels)},
        "missing": early_missing + sum(w["missing"] for w in windows),
        "failed_connects": early_failed + sum(w["failed_connects"] for w in windows),
        "acked_per_s": round(statistics.median(w["acked"] for w in windows) / 1, 1),
        "cpu": {k: _med([w["cpu"].get(k) for w in windows]) for k in windows[0]["cpu"]},
    }
    failed = []
    if out["ack_p99"] is None or out["ack_p99"] >= ACK_P99_MAX:
        failed.append("ack p99")
    if out["missing"]:
        failed.append("missing acks")
    if out["failed_connects"]:
        failed.append("failed connects")
    failed += [f"{k} lag" for k, v in out["lag"].items() if v >= LAG_MAX]
    if out["live_p99"] is None or out["live_p99"] >= LIVE_P99_MAX:
        failed.append("live p99")
    out["failed"] = failed
    out["held"] = not failed
    return out


def bare_limit(
    ctx: Any, agents: int, size: dict[str, Any], interval: float = 5.0, in_flight: int = 32
) -> dict[str, Any]:
    """The generator against agent_fleet's bare acking server: the machine's and the generator's
    own limit at the same fleet size (no Kafka, no database, no validation)."""
    ports: Any = multiprocessing.Queue()
    counter = multiprocessing.Value("q", 0)
    server = multiprocessing.Process(target=serve, args=(ports, counter), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{ports.get(timeout=30)}/api/v1/agents/ws"
        agents_keys = [(f"fpk_bare_{i}", f"00000000-0000-0000-0000-{i:012d}") for i in range(agents)]
        cfg = LoadConfig(url=url, connect_rate=100, interval=interval, window=in_flight)
        load = FleetLoad(agents_keys, cfg, size["procs"])
        cpu = CpuMeter({"bare server": [server.pid or 0], "load generator": load.pids})
        try:
            load.target(agents)
            load.collect(wait_grown=True)
            time.sleep(size["settle"])
            load.collect()
            cpu.read()
            t0 = time.monotonic()
            time.sleep(size["window"])
            s = load.collect()
            seconds = time.monotonic() - t0
        finally:
            load.stop()
        acks = percentiles(s.latencies)
        p99 = acks["p99"] if acks["p99"] is not None else float("inf")
        held = p99 < ACK_P99_MAX and s.missing == 0
        return {
            "agents": agents,
            "ack_p99": p99,
            "ack_p50": acks["p50"],
            "missing": s.missing,
            "held": held,
            "cpu": cpu.read(),
            "acked_per_s": round(s.acked / seconds, 1),
        }
    finally:
        server.terminate()
