"""A py-spy profile of the stack's processes while a scenario holds a load: the top costs of each
(the functions most samples were in, by their own time), so a missed goal names what bounds it.
py-spy (the `bench` extra) needs ptrace rights; without them the profile says why it is missing."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

TOP = 3


def record(pids: dict[str, int], seconds: float) -> dict[str, Any]:
    """{process name: {"samples": n, "top": [{"function", "share"}...]} or {"error": ...}}."""
    spy = shutil.which("py-spy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy")
    if not Path(spy).exists():
        return {name: {"error": "py-spy is not installed (pip install -e '.[bench]')"} for name in pids}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        running = {}
        for name, pid in pids.items():
            path = Path(tmp) / f"{pid}.txt"
            argv = [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(path),
                "--nonblocking",
                "--subprocesses",
                "--rate",
                "50",
            ]
            running[name] = (
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                path,
            )
        for name, (proc, path) in running.items():
            try:
                log, _ = proc.communicate(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                log, _ = proc.communicate()
            if not path.exists():
                out[name] = {"error": log.strip()[-300:] or f"py-spy exited {proc.returncode}"}
                continue
            out[name] = top_costs(path.read_text())
    return out


def top_costs(raw: str, top: int = TOP) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks: the leaf functions with the most samples."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        own[_short(leaf)] += int(count)
        total += int(count)
    return {
        "samples": total,
        "top": [{"function": f, "share": round(n / total, 3)} for f, n in own.most_common(top)]
        if total
        else [],
    }


def _short(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`: stable across runs."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    return f"{match.group(1)} ({Path(match.group(2)).name})"
