"""The deployables meet only through Kafka, `schemas/` and the pure rule package: the import
graph of the project's own packages, read from the source (every `import` and `from` statement,
in functions too), with what each package may import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FIRST_PARTY = {"schemas", "alerting", "edge", "api", "ingest", "stream_processors", "ops", "agent"}
# What each package may import of the others. `ops` is the launcher above the deployables (the
# one-process server, the `make run` supervisor), so it may import any of them.
ALLOWED = {
    "schemas": set(),
    "alerting": {"schemas"},
    # The HTTP edge (uvicorn options, security headers, body limits) both servers share.
    "edge": {"schemas"},
    "api": {"schemas", "alerting", "edge"},
    "ingest": {"schemas", "edge"},
    "stream_processors": {"schemas", "alerting"},
    "agent": {"schemas"},
    "ops": FIRST_PARTY - {"ops"},
}
# The pure packages import no framework, driver or client: only the standard library and these
# (the contract's settings and token format need pydantic-settings and PyJWT; the bounded types
# raise pydantic_core's typed errors, pydantic's own engine).
PURE_THIRD_PARTY = {
    "schemas": {"pydantic", "pydantic_core", "pydantic_settings", "orjson", "jwt"},
    "alerting": {"pydantic", "orjson"},
}


def imports_of(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Top-level module -> the files of `package` importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_it_may_of_the_others(package: str) -> None:
    imported = imports_of(package)
    assert imported, f"no import found in {package}: the walk is broken"
    forbidden = {
        name: sorted(files)
        for name, files in imported.items()
        if name in FIRST_PARTY and name != package and name not in ALLOWED[package]
    }
    assert forbidden == {}


@pytest.mark.parametrize("package", sorted(PURE_THIRD_PARTY))
def test_the_pure_packages_import_no_framework(package: str) -> None:
    imported = imports_of(package)
    outside = {
        name: sorted(files)
        for name, files in imported.items()
        if name not in FIRST_PARTY
        and name not in sys.stdlib_module_names
        and name not in PURE_THIRD_PARTY[package]
        and name != "__future__"
    }
    assert outside == {}


def test_the_walk_sees_imports_inside_functions_and_skips_relative_ones(tmp_path: Path) -> None:
    # The checks above must not miss a lazy import (the API used to import ingest in a function).
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("import os\nfrom . import b\n")
    (tmp_path / "pkg" / "sub" / "c.py").write_text("def later():\n    from ingest.settings import X\n")
    assert imports_of("pkg", tmp_path) == {"os": {"pkg/a.py"}, "ingest": {"pkg/sub/c.py"}}
