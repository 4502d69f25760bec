"""Persistence: rows per second from Kafka into TimescaleDB (`bench/persist_throughput.py`): the
full path and the write path alone, against a raw binary COPY of the same rows measured in the
same run (its `--json` result: medians of `--runs`, ratios the medians of the per-run ratios)."""

from __future__ import annotations

from typing import Any

from .. import stagebench as sb

MODULE = "bench.persist_throughput"


def estimate(smoke: bool) -> float:
    return 30 if smoke else 240


def run(ctx: Any) -> dict[str, Any]:
    servers, samples = (5, 10) if ctx.smoke else (50, 100) if ctx.reduced else (100, 100)
    runs = 1 if ctx.smoke else 3
    args = ["--servers", str(servers), "--samples", str(samples)]
    ctx.step(f"{MODULE} {' '.join(args)} --runs {runs}")
    args += ["--admin-dsn", ctx.services.admin_dsn, "--kafka", ctx.services.bootstrap]
    out = sb.run(MODULE, args, ctx.services, ctx.out, runs, timeout=1200)[0]
    if out.data is None:
        raise sb.StageBenchError(f"{MODULE} wrote no JSON result")
    summary = [
        sb.from_figure(
            "persistence, full path (Kafka to TimescaleDB)", out, "full_path", "raw binary COPY", runs
        ),
        sb.from_figure(
            "persistence, write path alone (no Kafka)", out, "write_path", "raw binary COPY", runs
        ),
    ]
    return {"stage": out.data, "summary": summary}
