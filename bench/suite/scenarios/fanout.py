"""Fanout: 1,000, 5,000 and 10,000 browser sockets over 1,000 servers on one API process
(`bench/live_fanout.py`, the live hub's own benchmark): deliveries per second against a bare
websockets broadcast of the same frames in the same run, memory per socket, publication to
receive latency; and, in the same scenario, the naive design (`bench/suite/naive.py`: a Kafka
consumer per socket) with the same clients, sockets and servers, at the smallest size (a
consumer per socket does not reach the larger ones on this machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from .. import stagebench as sb

MODULE = "bench.live_fanout"
NAIVE = "bench.suite.naive"
NAIVE_TIMEOUT_S = 900


def estimate(smoke: bool) -> float:
    return 60 if smoke else 1200


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object a benchmark prints last (live_fanout prints it indented, after its lines)."""
    start = stdout.rfind("\n{")
    return dict(json.loads(stdout[start + 1 :] if start >= 0 else stdout[stdout.index("{") :]))


def run(ctx: Any) -> dict[str, Any]:
    sizes = [20] if ctx.smoke else [1000, 5000] if ctx.reduced else [1000, 5000, 10_000]
    servers = 10 if ctx.smoke else 1000
    # The latency phase at 100 samples/s: 1,000 deliveries/s at 10,000 sockets (10 per server).
    full = ["--burst", "5", "--rate", "100", "--steady-samples", "2", "--client-procs", "3"]
    extra = ["--burst", "3", "--steady-samples", "2"] if ctx.smoke else full
    by_size: dict[int, dict[str, Any]] = {}
    summary = []
    for n in sizes:
        args = ["--sockets", str(n), "--servers", str(servers), *extra]
        ctx.step(f"{MODULE} {' '.join(args)}")
        out = sb.run(MODULE, args, ctx.services, ctx.out, 1, timeout=1800, tag=str(n))[0]
        r = out.data if out.data is not None else last_json(out.stdout)
        by_size[n] = r
        command = " ".join(out.argv)
        summary.append(
            sb.row(
                f"fanout, {n:,} sockets / {servers:,} servers: deliveries",
                float(r["deliveries_per_s"]),
                "deliveries/s",
                float(r["raw_deliveries_per_s"]),
                "bare websockets broadcast",
                command=command,
            )
        )
        # None: the API's RSS grew less than the measurement resolves (small runs); no row.
        if r["kb_per_socket"] is not None:
            summary.append(
                sb.row(
                    f"fanout, {n:,} sockets: memory per socket",
                    float(r["kb_per_socket"]),
                    "KB",
                    None,
                    "",
                    command=command,
                    higher_is_better=False,
                )
            )
        summary.append(
            sb.row(
                f"fanout, {n:,} sockets: publish to receive p99 at "
                f"{r['steady_deliveries_per_s']:,.0f} deliveries/s",
                float(r["latency_ms_p99"]),
                "ms",
                None,
                "",
                command=command,
                higher_is_better=False,
            )
        )
    n = sizes[0]
    naive_args = ["--sockets", str(n), "--servers", str(servers), "--burst", "3" if ctx.smoke else "5"]
    ctx.step(f"naive design: {NAIVE} {' '.join(naive_args)}")
    command = " ".join(["python", "-m", NAIVE, *naive_args])
    try:
        naive = run_naive(ctx, naive_args)
    except (sb.StageBenchError, subprocess.TimeoutExpired, ValueError) as exc:
        # FleetPulse's figures stand without it; check.py reports the missing comparison.
        ctx.step(f"naive design FAILED: {exc}")
        naive = {"error": f"{type(exc).__name__}: {str(exc)[-600:]}", "command": command}
        return {"by_sockets": {str(k): v for k, v in by_size.items()}, "summary": summary, "naive": naive}
    summary.append(
        sb.row(
            f"fanout, {n:,} sockets: naive design (a Kafka consumer per socket)",
            float(naive["deliveries_per_s"]),
            "deliveries/s",
            float(by_size[n]["deliveries_per_s"]),
            "FleetPulse's hub, same sockets",
            command=command,
        )
    )
    if naive["kb_per_socket"] is not None:
        hub_kb = by_size[n]["kb_per_socket"]
        summary.append(
            sb.row(
                f"fanout, {n:,} sockets: naive design memory per socket",
                float(naive["kb_per_socket"]),
                "KB",
                float(hub_kb) if hub_kb else None,
                "FleetPulse's hub, same sockets" if hub_kb else "",
                command=command,
                higher_is_better=False,
            )
        )
    return {"by_sockets": {str(k): v for k, v in by_size.items()}, "naive": naive, "summary": summary}


def run_naive(ctx: Any, args: list[str]) -> dict[str, Any]:
    # Its own process group: on a timeout the server and client processes it started go too.
    proc = subprocess.Popen(
        [sys.executable, "-m", NAIVE, *args],
        cwd=sb.ROOT,
        env=sb.env_for(ctx.services),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=NAIVE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        (ctx.out / "naive.log").write_text(stdout + "\n--- stderr ---\n" + stderr[-20000:])
        raise sb.StageBenchError(f"{NAIVE} did not finish in {NAIVE_TIMEOUT_S} s") from None
    (ctx.out / "naive.log").write_text(stdout + "\n--- stderr ---\n" + stderr[-20000:])
    if proc.returncode != 0:
        raise sb.StageBenchError(f"{NAIVE} exited {proc.returncode}: {stderr.strip()[-800:]}")
    return last_json(stdout)
