"""Alerts: samples per second the alert engine evaluates with 10 rules per server, from the alert
engine's own benchmark (`bench/alerts_throughput.py`), called by its command line only (its
internals belong to the engine): in process against decoding alone, and a real worker against a
plain consumer, both measured in the same run; the worker's alert latency when it reports one.
Medians of several runs. It reads no address from the environment: it runs on the development
services (`127.0.0.1:15432` and `:19092`) in a database and a topic prefix of its own."""

from __future__ import annotations

import re
from typing import Any

from .. import stagebench as sb

MODULE = "bench.alerts_throughput"


def estimate(smoke: bool) -> float:
    return 45 if smoke else 360


def run(ctx: Any) -> dict[str, Any]:
    servers, samples = (5, 20) if ctx.smoke else (50, 100) if ctx.reduced else (100, 200)
    runs = 1 if ctx.smoke else 3
    args = ["--servers", str(servers), "--samples", str(samples)]
    if "--latency-seconds" in sb.options(MODULE):
        args += ["--latency-seconds", "3" if ctx.smoke else "10" if ctx.reduced else "20"]
    ctx.step(f"{MODULE} {' '.join(args)}, {runs} run(s)")
    out = sb.run(MODULE, args, ctx.services, ctx.out, runs, timeout=1800)
    where = "the development services (the benchmark's fixed addresses 127.0.0.1:15432, :19092)"
    if out[0].data is not None:
        return {"stage": out[0].data, "summary": from_json(out[0], runs), "ran_on": where}
    per_run = [parse(r.stdout) for r in out]
    med = {k: sb.median([p[k] for p in per_run if k in p]) for k in per_run[0]}
    ratio = {
        "evaluation": sb.median([p["evaluation"] / p["decode"] for p in per_run]),
        "worker": sb.median([p["worker"] / p["consume"] for p in per_run]),
    }
    command = " ".join(out[0].argv)
    summary = [
        sb.row(
            "alerts, evaluation in process (10 rules/server)",
            med["evaluation"],
            "samples/s",
            med["decode"],
            "decoding alone",
            ratio=ratio["evaluation"],
            command=command,
            runs=runs,
        ),
        sb.row(
            "alerts, one worker on Kafka",
            med["worker"],
            "samples/s",
            med["consume"],
            "plain consumer + decode",
            ratio=ratio["worker"],
            command=command,
            runs=runs,
        ),
    ]
    if "latency_p99_ms" in med:
        summary.append(
            sb.row(
                "alerts, sample to alert event p99 (half the worker's rate)",
                med["latency_p99_ms"],
                "ms",
                None,
                "",
                command=command,
                higher_is_better=False,
                runs=runs,
            )
        )
    return {"runs": per_run, "median": med, "summary": summary, "ran_on": where}


def from_json(run: sb.StageRun, runs: int) -> list[dict[str, Any]]:
    """Rows from the benchmark's `--json` result (its figures and their same-run limits)."""
    figs = run.figures()
    rows = [
        sb.from_figure(
            "alerts, evaluation in process (10 rules/server)", run, "evaluation", "decoding alone", runs
        )
    ]
    if "worker_of_consume" in figs:
        rows.append(
            sb.from_figure(
                "alerts, one worker on Kafka", run, "worker_of_consume", "plain consumer + decode", runs
            )
        )
    if "latency_p99_ms" in figs:
        rows.append(
            sb.from_figure(
                "alerts, sample to alert event p99 (half the worker's rate)", run, "latency_p99_ms", "", runs
            )
        )
    return rows


def parse(stdout: str) -> dict[str, float]:
    out = {
        "evaluation": sb.number(r"evaluation\s+([\d,.]+) samples/s", stdout),
        "decode": sb.number(r"baseline \(decode only\)\s+([\d,.]+)/s", stdout),
        "worker": sb.number(r"worker\s+([\d,.]+) samples/s", stdout),
        "consume": sb.number(r"baseline \(consume\+decode\)\s+([\d,.]+)/s", stdout),
    }
    latency = re.search(r"latency .*p50 ([\d,.]+) ms\s+p99 ([\d,.]+) ms", stdout)
    if latency:
        out["latency_p50_ms"] = float(latency.group(1).replace(",", ""))
        out["latency_p99_ms"] = float(latency.group(2).replace(",", ""))
    return out
