"""The runner: services up, every scenario in order with progress, results.json, report.md."""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from . import machine, report, services
from .scenarios import SCENARIOS
from .stack import Stack

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    """What a scenario gets: the services, the size of the run, a state folder, progress."""

    services: services.Services
    smoke: bool
    out: Path
    state: Path
    progress: Progress
    shared_stack: Stack | None = None
    reduced: bool = False  # --reduced: the full scenarios at smaller sizes (a shorter run)
    capacity_steps: list[int] = field(default_factory=list)  # --capacity-steps: the ramp's sizes

    def step(self, message: str) -> None:
        self.progress.step(message)

    def open_stack(self, name: str) -> Stack:
        """A started stack on a fresh database and topic prefix; in a smoke run one stack for
        every scenario (each provisions fleets of its own), so its start is paid once."""
        if self.smoke and self.shared_stack is not None:
            return self.shared_stack
        stack = Stack(self.services, "smoke" if self.smoke else name, self.state / name)
        self.step("starting the stack (as make run) on a fresh database and topic prefix")
        stack.start()
        if self.smoke:
            self.shared_stack = stack
        return stack

    def close_stack(self, stack: Stack) -> None:
        if stack is not self.shared_stack:
            stack.stop()
            stack.drop()

    def close(self) -> None:
        if self.shared_stack is not None:
            stack, self.shared_stack = self.shared_stack, None
            self.close_stack(stack)


@dataclass
class Progress:
    estimates: dict[str, float]
    started: float = field(default_factory=time.monotonic)
    current: str = ""
    current_started: float = 0.0
    done: set[str] = field(default_factory=set)

    def begin(self, name: str) -> None:
        self.current, self.current_started = name, time.monotonic()
        self.step("start")

    def finish(self, name: str) -> None:
        self.done.add(name)

    def eta(self) -> float:
        now = time.monotonic()
        left = sum(v for k, v in self.estimates.items() if k not in self.done and k != self.current)
        if self.current in self.estimates and self.current not in self.done:
            left += max(0.0, self.estimates[self.current] - (now - self.current_started))
        return left

    def step(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{_mmss(elapsed)} elapsed, ETA {_mmss(self.eta())}] {self.current}: {message}", flush=True)


def _mmss(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m:02d}:{s:02d}"


def run(args: argparse.Namespace) -> Path:
    chosen: list[tuple[str, ModuleType]] = [
        (n, m) for n, m in SCENARIOS if not args.only or n in args.only.split(",")
    ]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + ("-smoke" if args.smoke else "")
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    state = out / "state"
    scale = 0.35 if args.reduced and not args.smoke else 1.0
    progress = Progress({n: m.estimate(args.smoke) * scale for n, m in chosen})
    progress.current = "services"
    progress.step(f"starting ({args.services}); results in {out}")
    svc = services.start(args.services)
    info = machine.describe(svc.kafka_version, svc.postgres_version, svc.timescaledb_version)
    results: dict[str, Any] = {
        "smoke": args.smoke,
        "reduced": args.reduced and not args.smoke,
        "services": args.services,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "scenarios": {},
    }
    steps = [int(n) for n in args.capacity_steps.split(",") if n.strip()]
    ctx = Context(
        svc, args.smoke, out, state, progress, reduced=args.reduced and not args.smoke, capacity_steps=steps
    )
    try:
        for name, module in chosen:
            progress.begin(name)
            began, load_before = time.monotonic(), machine.load()
            entry: dict[str, Any] = {"load_before": load_before}
            try:
                entry["result"] = module.run(ctx)
                entry["status"] = "ok"
            except Exception as exc:  # one scenario's failure is reported; the others still run
                entry["status"] = "failed"
                entry["error"] = f"{type(exc).__name__}: {exc}"
                entry["traceback"] = traceback.format_exc()[-4000:]
                progress.step(f"FAILED: {entry['error']}")
            entry["seconds"] = round(time.monotonic() - began, 1)
            entry["load_after"] = machine.load()
            results["scenarios"][name] = entry
            progress.finish(name)
            progress.step(f"{entry['status']} in {entry['seconds']:.0f} s")
            _write(out, results)
    finally:
        progress.current = "services"
        progress.step("stopping")
        try:
            ctx.close()
        finally:
            services.stop(svc)
    results["machine"]["load_after"] = machine.load()
    results["wall_seconds"] = round(time.monotonic() - progress.started, 1)
    _write(out, results)
    report.write(out, results)
    progress.step(f"report written: {out / 'report.md'} (wall time {_mmss(results['wall_seconds'])})")
    return out


def _write(out: Path, results: dict[str, Any]) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(out / "results.json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run: every scenario, minutes")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument(
        "--capacity-steps", default="", help="the capacity ramp's fleet sizes, e.g. 50,100,200"
    )
    parser.add_argument(
        "--reduced", action="store_true", help="every scenario at smaller sizes (sizes in results.json)"
    )
    parser.add_argument("--out", default="", help="results folder (default bench/results/<timestamp>)")
    parser.add_argument(
        "--services",
        choices=("own", "shared"),
        default=os.environ.get("FLEETPULSE_BENCH_SERVICES", "own"),
        help="own Kafka and PostgreSQL on other ports (default), or the running ones",
    )
    run(parser.parse_args())
