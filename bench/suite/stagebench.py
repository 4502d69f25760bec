"""Running a stage benchmark of `bench/` (owned by its stage) as a subprocess, by its command line.

Each is called as it is run by hand, pointed at the run's services through the variables every
benchmark reads. A benchmark with `--json PATH` (bench/README.md, `fleetpulse.bench.stage/1`)
does its several runs itself (`--runs`) and the figures come from its JSON; one without is run
several times and its printed lines are parsed. Its output is kept next to the results either way.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .services import Services

ROOT = Path(__file__).resolve().parents[2]


class StageBenchError(RuntimeError):
    pass


@dataclass
class StageRun:
    argv: list[str]
    stdout: str
    data: dict[str, Any] | None  # its --json output, when it has one

    def figures(self) -> dict[str, dict[str, Any]]:
        if self.data is None:
            return {}
        return {f["name"]: f for f in self.data.get("figures", [])}


def options(module: str) -> str:
    """The benchmark's --help text: which options it has (they change as its stage does)."""
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout


def env_for(services: Services) -> dict[str, str]:
    return {
        **os.environ,
        "FLEETPULSE_KAFKA_BOOTSTRAP": services.bootstrap,
        "FLEETPULSE_TEST_ADMIN_DSN": services.admin_dsn,
        "FLEETPULSE_BENCH_ADMIN_DSN": services.admin_dsn,
    }


def run(
    module: str, args: list[str], services: Services, out: Path, runs: int, timeout: float, tag: str = ""
) -> list[StageRun]:
    """`runs` runs: one call with `--runs N --json` when the benchmark has them, else N calls."""
    help_text = options(module)
    use_json = "--json" in help_text
    has_runs = "--runs" in help_text
    calls, extra = (1, ["--runs", str(runs)]) if use_json and has_runs else (runs, [])
    results = []
    name = module.rpartition(".")[2] + (f"-{tag}" if tag else "")
    for i in range(calls):
        path = out / f"{name}-{i + 1}.json"
        argv = [sys.executable, "-m", module, *args, *extra] + (["--json", str(path)] if use_json else [])
        done = subprocess.run(
            argv, cwd=ROOT, env=env_for(services), capture_output=True, text=True, timeout=timeout
        )
        (out / f"{name}-{i + 1}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr[-20000:])
        if done.returncode != 0:
            raise StageBenchError(f"{module} exited {done.returncode}: {done.stderr.strip()[-800:]}")
        data = json.loads(path.read_text()) if use_json and path.exists() else None
        shown = ["python", "-m", module, *args, *extra] + (["--json", path.name] if use_json else [])
        results.append(StageRun(shown, done.stdout, data))
    return results


def number(pattern: str, text: str) -> float:
    """The first number the pattern's group captures (thousands separators allowed)."""
    match = re.search(pattern, text)
    if match is None:
        raise StageBenchError(f"no {pattern!r} in the benchmark's output:\n{text[-1500:]}")
    return float(match.group(1).replace(",", ""))


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def row(
    what: str,
    value: float,
    unit: str,
    limit: float | None,
    limit_what: str,
    *,
    ratio: float | None = None,
    command: str = "",
    higher_is_better: bool = True,
    runs: int = 1,
) -> dict[str, Any]:
    """A summary row: value / limit (both from the same run); `ratio` when the benchmark gave
    the median of its per-run ratios, which is what it is then."""
    if ratio is None and limit:
        ratio = value / limit
    return {
        "what": what,
        "value": round(value, 1),
        "unit": unit,
        "limit": None if limit is None else round(limit, 1),
        "limit_what": limit_what,
        "ratio": None if ratio is None else round(ratio, 3),
        "higher_is_better": higher_is_better,
        "runs": runs,
        "command": command,
    }


def from_figure(what: str, run: StageRun, name: str, limit_what: str, runs: int) -> dict[str, Any]:
    """A summary row from a figure of a `--json` result and its limit figure."""
    figs = run.figures()
    fig = figs[name]
    limit = figs[fig["limit"]]["median"] if fig.get("limit") else None
    return row(
        what,
        float(fig["median"]),
        fig["unit"],
        limit,
        limit_what,
        ratio=fig.get("ratio"),
        command=" ".join(run.argv),
        higher_is_better=fig.get("higher_is_better", True),
        runs=runs,
    )
