"""The machine-readable result every stage benchmark writes with `--json PATH` (bench/README.md).

One shape for all of them, so a suite can run them and build its report without parsing text:
each figure keeps the value of every run and its median, names the limit it is measured against
(another figure of the same run), and carries the ratio as the median of the per-run ratios, so
a noisy machine moves a figure and its limit together. `environment` says what it ran on.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

SCHEMA = "fleetpulse.bench.stage/1"
PACKAGES = ("aiokafka", "psycopg", "asyncpg", "pydantic", "pydantic-core", "orjson", "websockets", "uvicorn")


@dataclass
class Figure:
    """One measured quantity: a value per run, the median, and its same-run limit if any."""

    name: str
    unit: str
    label: str
    higher_is_better: bool = True
    limit: str | None = None  # the `name` of the limit figure of the same result
    goal: float | None = None  # an absolute goal in `unit`
    goal_ratio: float | None = None  # a goal for the ratio to `limit`
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


@dataclass
class StageResult:
    benchmark: str
    parameters: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # free-form details (profile, counts)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_before: tuple[float, ...] = field(default_factory=os.getloadavg)

    def figure(self, name: str, unit: str, label: str, **kwargs: Any) -> Figure:
        fig = Figure(name, unit, label, **kwargs)
        self.figures.append(fig)
        return fig

    def get(self, name: str) -> Figure:
        for fig in self.figures:
            if fig.name == name:
                return fig
        raise KeyError(name)

    def ratio_runs(self, fig: Figure) -> list[float]:
        """value / limit in each run where both were measured."""
        if fig.limit is None:
            return []
        limit = self.get(fig.limit)
        return [v / lim for v, lim in zip(fig.runs, limit.runs, strict=False) if lim]

    def as_dict(self, *, versions: dict[str, str] | None = None) -> dict[str, Any]:
        figures = []
        for fig in self.figures:
            ratios = self.ratio_runs(fig)
            ratio = statistics.median(ratios) if ratios else None
            median = fig.median
            met: bool | None = None
            if fig.goal is not None or fig.goal_ratio is not None:
                met = True
                if fig.goal is not None and median is not None:
                    met = median >= fig.goal if fig.higher_is_better else median <= fig.goal
                if fig.goal_ratio is not None and ratio is not None:
                    met = met and (
                        ratio >= fig.goal_ratio if fig.higher_is_better else ratio <= fig.goal_ratio
                    )
            figures.append(
                {
                    "name": fig.name,
                    "label": fig.label,
                    "unit": fig.unit,
                    "higher_is_better": fig.higher_is_better,
                    "median": median,
                    "runs": fig.runs,
                    "limit": fig.limit,
                    "ratio": ratio,
                    "ratio_runs": ratios,
                    "goal": fig.goal,
                    "goal_ratio": fig.goal_ratio,
                    "met": met,
                }
            )
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", *_argv()]),
            "parameters": self.parameters,
            "figures": figures,
            "notes": self.notes,
            "environment": environment(self.started_at, self.load_before, versions or {}),
        }

    def write(self, path: str | Path, *, versions: dict[str, str] | None = None) -> None:
        data = self.as_dict(versions=versions)
        Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def _argv() -> list[str]:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0]).stem
    return [name, *sys.argv[1:]]


def _commit() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(dirty)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def environment(
    started_at: datetime, load_before: tuple[float, ...], versions: dict[str, str]
) -> dict[str, Any]:
    """What a result ran on: the machine, its load around the run, the commit and versions."""
    commit, dirty = _commit()
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
        "dirty": dirty,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "versions": {**packages, **versions},
    }


async def service_versions(dsn: str | None = None) -> dict[str, str]:
    """PostgreSQL's and TimescaleDB's versions (the benchmarks all have a database to ask)."""
    out: dict[str, str] = {}
    if dsn is not None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            row = await (await conn.execute("SHOW server_version")).fetchone()
            if row:
                out["postgresql"] = str(row[0])
            row = await (
                await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            ).fetchone()
            if row:
                out["timescaledb"] = str(row[0])
    pom = Path(__file__).resolve().parent.parent / "infra" / "kafka" / "pom.xml"
    if pom.exists():
        text = pom.read_text()
        start = text.find("<kafka.version>")
        if start >= 0:
            out["kafka"] = text[start + len("<kafka.version>") : text.find("</kafka.version>")]
    return out


def print_table(result: StageResult) -> None:
    """The human-readable summary every stage benchmark prints."""
    data = result.as_dict()
    for fig in data["figures"]:
        median = fig["median"]
        value = "-" if median is None else f"{median:,.1f}"
        ratio = "" if fig["ratio"] is None else f"  ratio to {fig['limit']} {fig['ratio']:.2f}"
        runs = ", ".join(f"{v:,.1f}" for v in fig["runs"])
        goal = "" if fig["met"] is None else ("  goal met" if fig["met"] else "  goal MISSED")
        print(f"{fig['label']:44s} {value:>12s} {fig['unit']:<14s}{ratio}{goal}  [{runs}]")
    load = data["environment"]["load_before"], data["environment"]["load_after"]
    print(f"load before {load[0]}, after {load[1]}; {data['environment']['cores']} cores")
