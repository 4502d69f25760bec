"""`fleetpulse`, the operators' command, end to end on a real server (API and ingest in one process,
Kafka, TimescaleDB), run as an operator runs it: the installed console script, from a folder that
is not the checkout, with its session in a config folder of its own. Each subcommand: login (the
session kept 0600, tokens refreshed), servers, keys create|list|revoke, rules, alerts, run (a real
agent answers), watch (live data from a real agent), logout."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.test_agent_stack import Proc, persisting, service_env
from tests.support.persist import wait_until
from tests.support.server import Server, combined_server

FLEETPULSE = Path(sys.executable).parent / "fleetpulse"
PASSWORD = "cli test password 1"


@pytest.fixture
async def server(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with combined_server(database_url, kafka_bootstrap, tmp_path) as running:
        yield running


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "config"
        self.cwd = tmp_path / "elsewhere"  # not the checkout: no .state/ to fall back on
        self.cwd.mkdir()

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
        env["XDG_CONFIG_HOME"] = str(self.config)
        return subprocess.run(
            [str(FLEETPULSE), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.cwd,
            timeout=120,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    @property
    def session_file(self) -> Path:
        return self.config / "fleetpulse" / "session.json"


async def register(url: str) -> tuple[str, dict[str, str]]:
    name = f"cli{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=url) as client:
        body = {
            "email": f"{name}@example.com",
            "username": name,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        }
        reg = await client.post("/api/v1/auth/register", json=body)
        assert reg.status_code == 201, reg.text
    return f"{name}@example.com", {"Authorization": f"Bearer {reg.json()['access_token']}"}


async def test_every_subcommand_against_a_real_server(server: Server, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    email, auth = await register(server.url)
    async with httpx.AsyncClient(base_url=server.url, headers=auth) as client:
        created = await client.post("/api/v1/servers", json={"name": "cli-web-1"})
        server_id = created.json()["id"]

    # Not signed in: a clear refusal, nothing guessed.
    refused = cli("servers")
    assert refused.returncode == 2 and "not signed in" in refused.stderr

    # login: the session is kept, private, without the password.
    done = cli("--api", server.url, "login", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    mode = stat.S_IMODE(cli.session_file.stat().st_mode)
    assert mode == 0o600 and stat.S_IMODE(cli.session_file.parent.stat().st_mode) == 0o700
    session = json.loads(cli.session_file.read_text())
    assert session["api_url"] == server.url and session["email"] == email
    assert PASSWORD not in cli.session_file.read_text()
    wrong = cli("--api", server.url, "login", "--email", email, "--password-stdin", stdin="nope\n")
    assert wrong.returncode == 2 and "401" in wrong.stderr

    # servers
    listed = cli.json("servers")
    assert [(s["name"], s["id"]) for s in listed] == [("cli-web-1", server_id)]
    table = cli("servers")
    assert table.returncode == 0 and "cli-web-1" in table.stdout and "NAME" in table.stdout

    # keys create | list | revoke
    made = cli("keys", "create", "cli-web-1", "--name", "from the cli")
    assert made.returncode == 0, made.stderr
    assert f"curl -fsSL {server.url}/install.sh | sudo sh -s -- --key fpk_" in made.stdout
    key = next(word for word in made.stdout.split() if word.startswith("fpk_"))
    keys = cli.json("keys", "list", "cli-web-1")
    assert len(keys) == 1 and keys[0]["name"] == "from the cli" and keys[0]["is_active"]
    assert "key" not in keys[0]  # shown once, at creation

    # An expired access token is refreshed with the refresh token, and the new pair kept.
    session["access_token"] = "expired-or-garbage"
    cli.session_file.write_text(json.dumps(session))
    assert cli.json("servers")[0]["id"] == server_id
    renewed = json.loads(cli.session_file.read_text())
    assert (
        renewed["access_token"] != "expired-or-garbage"
        and renewed["refresh_token"] != session["refresh_token"]
    )

    # rules: a threshold made through the REST API is one of the rules.
    async with httpx.AsyncClient(base_url=server.url, headers=auth) as client:
        rule = await client.post(
            "/api/v1/alerts/thresholds",
            json={"server_id": server_id, "metric_type": "cpu", "threshold_value": 90, "comparison": "gt"},
        )
        assert rule.status_code in (200, 201), rule.text
        # Remote commands: on for this server (the agent must allow them too).
        on = await client.put(
            f"/api/v1/servers/{server_id}/commands",
            json={"commands_enabled": True, "command_allowlist": ["echo [a-z ]+", "uptime"]},
        )
        assert on.status_code == 200, on.text
    rules = cli.json("rules", "--server", "cli-web-1")
    assert len(rules) == 1 and rules[0]["rule"]["server_id"] == server_id

    # alerts: an episode as the alert engine stores it, filtered by server and state.
    owner = (await _me(server.url, auth))["id"]
    await _store_episode(server.env.common.database_url, owner, server_id)
    alerts = cli.json("alerts", "--server", "cli-web-1", "--state", "firing")
    assert [a["message"] for a in alerts] == ["cpu above 90 on cli-web-1"]
    assert cli.json("alerts", "--state", "resolved") == []

    # run and watch: a real agent of this server, with the key made above, commands allowlisted.
    agent = Proc(
        [sys.executable, "-m", "fleetpulse_agent", "run"],
        service_env(
            server.env.common,
            FLEETPULSE_AGENT_SERVER_URL=server.agent_url,
            FLEETPULSE_AGENT_API_KEY=key,
            FLEETPULSE_AGENT_STATE_DIR=str(tmp_path / "agent"),
            FLEETPULSE_AGENT_INTERVAL_SECONDS="1",
            FLEETPULSE_AGENT_STARTUP_JITTER_SECONDS="0",
            FLEETPULSE_AGENT_COMMANDS_ENABLED="true",
            FLEETPULSE_AGENT_COMMAND_ALLOWLIST='["echo [a-z ]+"]',
        ),
        tmp_path / "agent.log",
    ).start()
    try:
        async with persisting(server.env):  # presence and samples stored, as in production
            await _run_and_watch(cli, agent)
    finally:
        agent.stop()

    revoked = cli("keys", "revoke", keys[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert cli.json("keys", "list", "cli-web-1")[0]["is_active"] is False

    # logout: the session is gone; the next command needs a login again.
    out = cli("logout")
    assert out.returncode == 0 and "signed out" in out.stdout and not cli.session_file.exists()
    assert cli("servers").returncode == 2


async def _run_and_watch(cli: Cli, agent: Proc) -> None:
    async def online() -> bool:
        assert agent.proc is not None and agent.proc.poll() is None, agent.output()[-2000:]
        return any(s["status"] == "online" for s in cli.json("servers"))

    await wait_until(online, timeout=60, what="the agent's server online")
    ran = cli("run", "cli-web-1", "echo", "hello", "from", "the", "cli")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout == "hello from the cli\n"
    # Refused by the server's allowlist (an API error), or by the agent's own (its exit code 126).
    by_server = cli("run", "cli-web-1", "id")
    assert by_server.returncode == 2 and "403" in by_server.stderr and "allowlist" in by_server.stderr
    by_agent = cli("run", "cli-web-1", "uptime")
    assert by_agent.returncode == 126 and "agent's allowlist" in by_agent.stderr, by_agent.stderr

    watched = cli("watch", "cli-web-1", "--max-live", "1")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "-- metrics: end of history, live from here --" in watched.stdout
    assert "[live   ] metrics  cpu" in watched.stdout


async def _me(url: str, auth: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=auth) as client:
        me: dict[str, Any] = (await client.get("/api/v1/auth/me")).json()
        return me


async def _store_episode(dsn: str, owner: str, server_id: str) -> None:
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id, metric,"
            " severity, comparison, threshold, state, started_at, fired_at, fired_value, message)"
            " VALUES (%s, %s, 'cpu high', 'threshold', %s, %s, 'cpu', 'warning', 'gt', 90, 'firing',"
            " %s, %s, 95, 'cpu above 90 on cli-web-1')",
            (uuid.uuid4(), uuid.uuid4(), owner, server_id, now, now),
        )
