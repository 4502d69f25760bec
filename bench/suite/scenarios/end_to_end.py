"""End to end: from an agent's send to a browser socket's receive of the live frame, p50, p95 and
p99, at 25, 50 and 75 % of the maximum the stack sustains, measured first in the same run.

The stack `make run` starts (API with ingest, processors with the alert engine), seed-dialect
agents from `bench/agent_fleet.py` (lean, many per process) and browser sockets watching a sample
of their servers (`bench/suite/browsers.py`). The maximum: the agents flat out (a window of frames
in flight each), acked frames per second; same-run limit: the same generator against a bare
acking server. Then paced at each fraction of that maximum: ack latency and live latency over
several windows, medians of the windows.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.agent_fleet import FleetLoad, LoadConfig, LoadStats

from ..browsers import Browsers, join, percentiles
from ..stack import CpuMeter, Stack
from ..stagebench import row
from . import capacity

FRACTIONS = (0.25, 0.5, 0.75)


def estimate(smoke: bool) -> float:
    return 70 if smoke else 420


def _sizes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"agents": 6, "procs": 1, "watched": 3, "settle": 2, "windows": 1, "window": 4, "in_flight": 4}
    return {"agents": 100, "procs": 2, "watched": 10, "settle": 8, "windows": 3, "window": 15, "in_flight": 8}


def run(ctx: Any) -> dict[str, Any]:
    size = _sizes(ctx.smoke)
    if ctx.reduced:
        size |= {"agents": 50, "settle": 5, "window": 10}
    stack = ctx.open_stack("end-to-end")
    phases: dict[str, Any] = {}
    try:
        fleet = stack.provision(size["agents"])
        watched = _watched(fleet.agents, size)
        browsers = Browsers(stack.api_url, fleet.token, watched)
        cfg = LoadConfig(url=stack.agent_url, interval=0, window=size["in_flight"], watched=size["watched"])
        load = FleetLoad(fleet.agents, cfg, size["procs"])
        try:
            ctx.step(f"maximum: {size['agents']} agents flat out, {size['in_flight']} frames in flight each")
            load.target(len(fleet.agents))
            load.collect(wait_grown=True)
            phases["max"] = phase(ctx, stack, load, size, browsers, "max")
            top = phases["max"]["acked_per_s"]
            for f in FRACTIONS:
                # The same agents and sockets, paced: each sends every `interval` seconds.
                rate = top * f
                interval = size["agents"] / rate
                load.configure(interval=interval, ack_deadline=max(5.0, 2 * interval))
                ctx.step(
                    f"{f:.0%} of max: {rate:,.0f} frames/s ({size['agents']} agents, each {interval:.3f} s)"
                )
                key = f"{round(f * 100)}%"
                phases[key] = phase(ctx, stack, load, size, browsers, f"{f:.0%}")
                phases[key]["target_per_s"] = round(rate, 1)
        finally:
            load.stop()
            browsers.stop()
    finally:
        ctx.close_stack(stack)
    ctx.step("same-run limit: the generator flat out against a bare acking server")
    bare = capacity.bare_limit(
        ctx, size["agents"], {**size, "window": size["window"]}, interval=0, in_flight=size["in_flight"]
    )
    summary = [
        row(
            f"end to end, maximum ({size['agents']} agents flat out), acked",
            phases["max"]["acked_per_s"],
            "frames/s",
            bare["acked_per_s"],
            "same generator, bare acking server",
            runs=size["windows"],
        )
    ]
    for f in FRACTIONS:
        p = phases[f"{round(f * 100)}%"]
        for q in ("p50", "p95", "p99"):
            v = p["live"][q]
            if v is None:
                raise RuntimeError(f"no live frame reached a browser socket at {f:.0%} of max")
            summary.append(
                row(
                    f"end to end, agent send to browser receive {q} at {f:.0%} of max "
                    f"({p['acked_per_s']:,.0f} frames/s)",
                    v * 1000,
                    "ms",
                    None,
                    "",
                    higher_is_better=False,
                    runs=size["windows"],
                )
            )
    return {"phases": phases, "bare": bare, "sizes": size, "summary": summary}


def _watched(agents: list[tuple[str, str]], size: dict[str, Any]) -> list[str]:
    """The servers of the agents that report their send times: the first `watched` of each worker."""
    procs = size["procs"]
    return [a[1] for i in range(procs) for a in agents[i::procs][: size["watched"]]]


def phase(
    ctx: Any, stack: Stack, load: FleetLoad, size: dict[str, Any], browsers: Browsers, label: str
) -> dict[str, Any]:
    """After `settle` seconds at the load's current pace, `windows` measurement windows."""
    cpu = CpuMeter(
        {
            **{n: [p] for n, p in stack.pids().items()},
            "load generator": load.pids,
            "browser sockets": [browsers.proc.pid or 0],
        }
    )
    load.collect()
    time.sleep(size["settle"])
    sends = load.collect().watched_sends
    browsers.collect()
    cpu.read()
    windows: list[dict[str, Any]] = []
    for w in range(size["windows"]):
        t0 = time.monotonic()
        time.sleep(size["window"])
        s: LoadStats = load.collect()
        seconds = time.monotonic() - t0
        live = join(sends + s.watched_sends, browsers.collect())
        sends = s.watched_sends
        acks = percentiles(s.latencies)
        windows.append(
            {
                "acked_per_s": round(s.acked / seconds, 1),
                "ack": acks,
                "live": percentiles(live),
                "live_frames": len(live),
                "missing": s.missing,
                "failed_connects": s.failed_connects,
                "cpu": cpu.read(),
            }
        )
        ctx.step(
            f"{label}: window {w + 1}/{size['windows']}: {windows[-1]['acked_per_s']:,.0f} acked/s, "
            f"ack p99 {_ms(acks['p99'])}, live p99 {_ms(percentiles(live)['p99'])}"
        )
    return {
        "windows": windows,
        "acked_per_s": round(statistics.median(w["acked_per_s"] for w in windows), 1),
        "ack": {q: _med([w["ack"][q] for w in windows]) for q in ("p50", "p95", "p99")},
        "live": {q: _med([w["live"][q] for w in windows]) for q in ("p50", "p95", "p99")},
        "live_frames": sum(w["live_frames"] for w in windows),
        "missing": sum(w["missing"] for w in windows),
        "cpu": {k: _med([w["cpu"].get(k) for w in windows]) for k in windows[0]["cpu"]},
    }


def _med(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(statistics.median(vs), 4) if vs else None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"
