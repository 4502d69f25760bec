"""The Python versions the agent supports, found on this machine: pyenv's (`pyenv root`, or
$PYENV_ROOT) first, then `pythonX.Y` on PATH. Locally a missing one skips its test with the reason;
under CI it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SUPPORTED = ("3.9", "3.10", "3.11", "3.12", "3.13")


def _pyenv_root() -> Path | None:
    pyenv = shutil.which("pyenv")
    if pyenv:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    root = os.environ.get("PYENV_ROOT")
    return Path(root) if root else None


def find_python(version: str) -> Path | None:
    root = _pyenv_root()
    if root is not None:
        for candidate in sorted((root / "versions").glob(f"{version}.*"), reverse=True):
            python = candidate / "bin" / f"python{version}"
            if python.is_file() and os.access(python, os.X_OK):
                return python
    found = shutil.which(f"python{version}")
    return Path(found) if found else None
