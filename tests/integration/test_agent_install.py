"""The one-line install, exactly as FleetPulse shows it, on a real stack: `POST /api-keys` answers
the line; the line (curl | sh, with `--root` for a throwaway root and `--python` for the version
under test, without sudo) installs the agent from the server's own wheels into a fresh virtual
environment, writes its configuration and hardened unit, and checks the key; the unit's own
ExecStart then streams to ingest and the sample is stored; the uninstall removes it again.

One test per supported Python: the oldest and the newest in CI, all five with FLEETPULSE_FULL=1.
The wheelhouse is make run's (every supported Python and CPU, cached in the state folder: warm runs
do not download)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ops import wheelhouse
from schemas.settings import CommonSettings
from tests.conftest import FULL, IN_CI
from tests.integration.test_agent_stack import Proc, metric_times, persisting
from tests.support.persist import wait_until
from tests.support.pythons import SUPPORTED, find_python
from tests.support.server import Server, combined_server

VERSIONS = SUPPORTED if FULL else (SUPPORTED[0], SUPPORTED[-1])
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
    platform.machine()
)


def _python(version: str) -> Path:
    python = find_python(version)
    if python is None:
        message = f"Python {version} not found (pyenv root, or python{version} on PATH)"
        if IN_CI:
            pytest.fail(f"under CI every supported Python must be present: {message}", pytrace=False)
        pytest.skip(message)
    return python


@pytest.fixture(scope="module")
def wheels() -> Path:
    if ARCH is None:
        pytest.skip(f"the wheelhouse has no wheels for {platform.machine()}")
    # The same folder and targets as make run's: one build (cached) serves both.
    return wheelhouse.build(CommonSettings().state_dir / "wheelhouse")


@pytest.fixture
async def server(
    database_url: str, kafka_bootstrap: str, tmp_path: Path, wheels: Path
) -> AsyncIterator[Server]:
    async with combined_server(
        database_url, kafka_bootstrap, tmp_path, FLEETPULSE_API_AGENT_WHEELHOUSE=str(wheels)
    ) as running:
        yield running


def sh(line: str, *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETPULSE_", "PIP_", "VIRTUAL_ENV"))}
    return subprocess.run(
        ["sh", "-c", line], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_one_line_install_brings_a_new_server_online(
    server: Server, version: str, tmp_path: Path
) -> None:
    python = _python(version)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        password = "install test 1"
        name = f"u{uuid.uuid4().hex[:10]}"
        reg = await client.post(
            "/api/v1/auth/register",
            json={
                "email": f"{name}@example.com",
                "username": name,
                "password": password,
                "password_confirm": password,
            },
        )
        assert reg.status_code == 201, reg.text
        auth = {"Authorization": f"Bearer {reg.json()['access_token']}"}
        created = await client.post("/api/v1/servers", json={"name": f"new-{version}"}, headers=auth)
        server_id = created.json()["id"]
        key = await client.post("/api/v1/api-keys", json={"server_id": server_id}, headers=auth)
        line = key.json()["install_command"]
        assert line == f"curl -fsSL {server.url}/install.sh | sudo sh -s -- --key {key.json()['key']}"

        # The line as shown, without sudo, into a throwaway root, with the Python under test.
        root = tmp_path / "root"
        done = sh(line.replace("| sudo sh", "| sh") + f" --root {shlex.quote(str(root))} --python {python}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (
            f"the server at ws://127.0.0.1:{server.url.rsplit(':', 1)[1]}/api/v1/agents/ws accepted the key"
            in done.stdout
        )
        prefix, conf = root / "opt" / "fleetpulse-agent", root / "etc" / "fleetpulse" / "agent.toml"
        assert conf.stat().st_mode & 0o077 == 0, "the configuration holds the key: no access for others"

        # The wheel alone: the environment holds the agent and its declared dependencies, nothing more.
        listed = subprocess.run(
            [
                str(prefix / "bin" / "python"),
                "-m",
                "pip",
                "list",
                "--format=json",
                "--disable-pip-version-check",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        names = {p["name"].lower() for p in json.loads(listed.stdout)} - {"pip", "setuptools", "wheel"}
        expected = {"fleetpulse-agent", "psutil", "websockets"} | (
            {"tomli"} if version in ("3.9", "3.10") else set()
        )
        assert names == expected
        venv_version = subprocess.run(
            [str(prefix / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert venv_version.stdout.strip() == version

        # The hardened unit, and its own ExecStart run as systemd would run it.
        unit = (root / "etc" / "systemd" / "system" / "fleetpulse-agent.service").read_text()
        for hardening in (
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "User=fleetpulse-agent",
            "CapabilityBoundingSet=",
        ):
            assert hardening in unit
        exec_start = next(x for x in unit.splitlines() if x.startswith("ExecStart=")).removeprefix(
            "ExecStart="
        )
        agent = Proc(shlex.split(exec_start), sh_env(), tmp_path / "agent.log").start()
        try:
            async with persisting(server.env):

                async def stored() -> bool:
                    assert agent.proc is not None and agent.proc.poll() is None, agent.output()[-3000:]
                    return len(await metric_times(server.env.common.database_url, uuid.UUID(server_id))) >= 1

                await wait_until(stored, timeout=90, what="the installed agent's first sample stored")

                async def online() -> bool:
                    listed = (await client.get("/api/v1/servers", headers=auth)).json()
                    return any(s["id"] == server_id and s["status"] == "online" for s in listed)

                await wait_until(online, timeout=30, what="the new server shown online")
        finally:
            assert agent.stop() == 0, agent.output()[-3000:]

    # The uninstall: the agent, its unit and its configuration go; its spool stays.
    gone = sh(f"curl -fsSL {server.url}/install.sh | sh -s -- --uninstall --root {shlex.quote(str(root))}")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not prefix.exists() and not conf.exists()
    assert not (root / "etc" / "systemd" / "system" / "fleetpulse-agent.service").exists()
    assert (root / "var" / "lib" / "fleetpulse-agent" / "spool.sqlite3").exists()


def sh_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FLEETPULSE_", "VIRTUAL_ENV"))}


async def test_the_installer_refuses_a_bad_key_and_a_missing_key(server: Server, tmp_path: Path) -> None:
    root = shlex.quote(str(tmp_path / "root"))
    missing = sh(f"curl -fsSL {server.url}/install.sh | sh -s -- --root {root}")
    assert missing.returncode != 0 and "--key is required" in missing.stderr
    odd = sh(f"curl -fsSL {server.url}/install.sh | sh -s -- --key 'a;b' --root {root}")
    assert odd.returncode != 0 and "characters an API key never has" in odd.stderr
    python = _python(VERSIONS[-1])
    never_issued = f"fpk_aaaaaaaaaaaa_{'b' * 43}"
    refused = sh(
        f"curl -fsSL {server.url}/install.sh | sh -s -- --key {never_issued} --root {root} --python {python}"
    )
    assert refused.returncode != 0 and "the server refused this API key" in refused.stderr, (
        refused.stdout + refused.stderr
    )
