"""The agent is its own small distribution: its modules import only the standard library and the
dependencies its pyproject.toml declares, never a server package. (The real proof, its wheel alone
in a fresh virtual environment of each Python, is tests/integration/test_agent_install.py.)"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "agent"
PACKAGE = AGENT / "src" / "fleetpulse_agent"
SERVER_PACKAGES = {"schemas", "api", "ingest", "stream_processors", "ops", "agent"}
# Import name of each declared dependency.
IMPORT_NAMES = {"psutil": "psutil", "websockets": "websockets", "tomli": "tomli", "docker": "docker"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((AGENT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in project["dependencies"]}
    extras = {
        re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]
        for ds in project["optional-dependencies"].values()
        for d in ds
    }
    return names, extras


def test_the_agent_depends_on_psutil_and_websockets_only() -> None:
    names, extras = declared()
    assert names == {"psutil", "websockets", "tomli"}  # tomli: Python < 3.11 only (tomllib after)
    assert extras == {"docker"}


def test_every_agent_module_imports_only_the_stdlib_and_its_declared_dependencies() -> None:
    names, extras = declared()
    allowed = set(sys.stdlib_module_names) | {"fleetpulse_agent"} | {IMPORT_NAMES[n] for n in names | extras}
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10
    for module in modules:
        roots = imported_roots(module)
        assert not roots & SERVER_PACKAGES, f"{module.relative_to(ROOT)} imports a server package"
        assert roots <= allowed, f"{module.relative_to(ROOT)} imports {sorted(roots - allowed)}"


def test_the_check_itself_sees_a_server_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from schemas.agent_wire import AGENT_FRAME\nimport pydantic\n")
    assert imported_roots(bad) == {"schemas", "pydantic"}
