"""Ingest: acked frames per second of one ingest process (acks after Kafka), for 1, 10 and 50
agents, against a bare aiokafka producer measured in the same run (`bench/ingest_throughput.py`,
its `--json` result: medians of `--runs`, ratios the medians of the per-run ratios)."""

from __future__ import annotations

from typing import Any

from .. import stagebench as sb

MODULE = "bench.ingest_throughput"


def estimate(smoke: bool) -> float:
    return 30 if smoke else 300


def run(ctx: Any) -> dict[str, Any]:
    agents = [1, 5] if ctx.smoke else [1, 10, 50]
    frames = 300 if ctx.smoke else 5_000 if ctx.reduced else 20_000
    runs = 1 if ctx.smoke else 3
    args = ["--frames", str(frames), "--agents", *map(str, agents)]
    ctx.step(f"{MODULE} {' '.join(args)} --runs {runs}")
    out = sb.run(MODULE, args, ctx.services, ctx.out, runs, timeout=1200)[0]
    if out.data is None:
        raise sb.StageBenchError(f"{MODULE} wrote no JSON result")
    summary = [
        sb.from_figure(
            f"ingest, {n} agents, acked after Kafka",
            out,
            f"ingest_{n}_agents",
            "raw aiokafka producer (acks=all, idempotent)",
            runs,
        )
        for n in agents
    ]
    figs = out.figures()
    cpu = {n: figs[f"ingest_cpu_{n}_agents"]["median"] for n in agents if f"ingest_cpu_{n}_agents" in figs}
    return {"stage": out.data, "cpu_us_per_frame": cpu, "summary": summary}
