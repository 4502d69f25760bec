"""`fleetpulse-ops wheelhouse`: the agent's wheel and its dependencies' wheels, for the one-line install.

The API serves this folder at `/agent/wheels/` (docs/agent-install.md), so a monitored server
installs the agent from FleetPulse alone, with no other package index. Built here, from PyPI, once
(a stamp of the agent's sources and the targets makes a warm build a no-op):

- the agent's own wheel (pure Python, any Python from 3.9), built from `agent/`;
- psutil (one abi3 wheel per platform serves every Python), websockets (a wheel per Python and
  platform: 15.x on 3.9, the newest on 3.10+), tomli (3.9 and 3.10 only).

Targets: CPython 3.9 to 3.13 on manylinux x86_64 and aarch64 (glibc 2.17+). A server outside them
(musl/Alpine, 32-bit, other CPUs, PyPy) installs with `pip install fleetpulse-agent` from its own
index instead; docs/agent-install.md says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import OpsError

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "agent"
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
ARCHES = ("x86_64", "aarch64")
DEPENDENCIES = ("psutil>=5.9", "websockets>=13")
STAMP = ".fleetpulse-wheelhouse"


def _platforms(arch: str) -> list[str]:
    return [f"manylinux2014_{arch}", f"manylinux_2_17_{arch}", f"manylinux_2_28_{arch}"]


def _stamp(pythons: Sequence[str], arches: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for path in sorted([AGENT / "pyproject.toml", *(AGENT / "src").rglob("*.py")]):
        digest.update(path.relative_to(AGENT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(repr((tuple(pythons), tuple(arches), DEPENDENCIES)).encode())
    return digest.hexdigest()


def _pip(args: Iterable[str]) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
    if done.returncode != 0:
        raise OpsError(f"{' '.join(argv[3:6])} failed:\n{done.stderr.strip()[-2000:]}")


def build(dest: Path, pythons: Sequence[str] = PYTHONS, arches: Sequence[str] = ARCHES) -> Path:
    """The wheelhouse in `dest`, built (or found up to date) for these Pythons and CPUs.

    Built in a folder of its own and then swapped in, so a server reading `dest` (or a second
    build: the state folder may be shared) never sees it half-made."""
    want = _stamp(pythons, arches)
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == want:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        _pip(["wheel", "--no-deps", "-w", str(work), str(AGENT)])
        for python in pythons:
            requirements = list(DEPENDENCIES) + (["tomli>=1.1"] if python in ("3.9", "3.10") else [])
            for arch in arches:
                platforms = [arg for p in _platforms(arch) for arg in ("--platform", p)]
                _pip(
                    [
                        "download",
                        "--only-binary=:all:",
                        "--implementation",
                        "cp",
                        "--python-version",
                        python,
                        *platforms,
                        "-d",
                        str(work),
                        *requirements,
                    ]
                )
        (work / STAMP).write_text(want)
        work.chmod(0o755)
        old = dest.parent / f".{dest.name}-old-{os.getpid()}"
        if dest.exists():
            dest.rename(old)
        work.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="fleetpulse-ops wheelhouse", description=__doc__)
    parser.add_argument("--dest", type=Path, default=None, help="default: <state dir>/wheelhouse")
    parser.add_argument("--python", action="append", choices=PYTHONS, help="repeatable; default: all")
    parser.add_argument("--arch", action="append", choices=ARCHES, help="repeatable; default: all")
    args = parser.parse_args(argv)
    from schemas.settings import CommonSettings

    dest = args.dest or CommonSettings().state_dir / "wheelhouse"
    built = build(dest, args.python or PYTHONS, args.arch or ARCHES)
    print(f"wheelhouse: {len(list(built.glob('*.whl')))} wheels in {built}")
