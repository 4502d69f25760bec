"""What a run ran on: printed under every figure, so a number never travels without its machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=10"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe(kafka: str, postgres: str, timescaledb: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kafka": kafka,
        "postgres": postgres,
        "timescaledb": timescaledb,
        "commit": git_commit(),
        "load_before": load(),
    }


def caption(m: dict[str, Any], load_before: list[float], load_after: list[float]) -> str:
    """One line for a figure: cores, CPU, versions, commit, load average before and after."""
    return (
        f"{m['cores']} cores {m['cpu']}, Python {m['python']}, Kafka {m['kafka']}, "
        f"PostgreSQL {m['postgres']}, TimescaleDB {m['timescaledb']}, commit {m['commit']}; "
        f"load {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
