"""A results folder is complete: what `make bench-smoke` asserts (never a timing).

    python -m bench.suite.check bench/results/<run>

Every scenario ran and succeeded, each has a non-empty summary whose rows are well formed (a
positive value, a unit, a ratio exactly when a limit was measured), the report and every figure
it names exist and are PNG files, and the machine description is there.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .scenarios import SCENARIOS

PNG = b"\x89PNG\r\n\x1a\n"
MACHINE = ("cores", "cpu", "python", "kafka", "postgres", "timescaledb", "commit")


class IncompleteResults(Exception):
    pass


def problems(folder: Path, expected: list[str] | None = None) -> list[str]:
    found: list[str] = []
    path = folder / "results.json"
    if not path.exists():
        return [f"{path} is missing"]
    results: dict[str, Any] = json.loads(path.read_text())
    missing = [k for k in MACHINE if not results.get("machine", {}).get(k)]
    if missing:
        found.append(f"machine description lacks {missing}")
    names = expected if expected is not None else [n for n, _ in SCENARIOS]
    for name in names:
        entry = results.get("scenarios", {}).get(name)
        if entry is None:
            found.append(f"{name}: did not run")
            continue
        if entry.get("status") != "ok":
            found.append(f"{name}: {entry.get('status')}: {entry.get('error')}")
            continue
        naive = entry.get("result", {}).get("naive")
        if isinstance(naive, dict) and "error" in naive:
            found.append(f"{name}: the naive design did not run: {naive['error']}")
        rows = entry.get("result", {}).get("summary", [])
        if not rows:
            found.append(f"{name}: no summary rows")
        for r in rows:
            found += [f"{name}: {r.get('what')!r}: {p}" for p in row_problems(r)]
    report = folder / "report.md"
    if not report.exists():
        found.append("report.md is missing")
    else:
        text = report.read_text()
        for name in names:
            if f"## {name}" not in text:
                found.append(f"report.md has no section for {name}")
        for figure in results.get("figures", []):
            png = folder / figure
            if not png.exists() or png.read_bytes()[:8] != PNG:
                found.append(f"figure {figure} is missing or not a PNG")
            elif f"({figure})" not in text:
                found.append(f"report.md does not show {figure}")
        if not results.get("figures"):
            found.append("no figure was drawn")
    return found


def row_problems(r: dict[str, Any]) -> list[str]:
    out = []
    value = r.get("value")
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        out.append(f"value {value!r}")
    if not r.get("unit"):
        out.append("no unit")
    limit, ratio = r.get("limit"), r.get("ratio")
    if limit is not None and (not isinstance(ratio, int | float) or not math.isfinite(ratio)):
        out.append(f"a limit ({limit}) without a ratio")
    if limit is None and ratio is not None:
        out.append("a ratio without a limit")
    return out


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    found = problems(Path(sys.argv[1]))
    for p in found:
        print(f"incomplete: {p}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"{sys.argv[1]}: complete")


if __name__ == "__main__":
    main()
