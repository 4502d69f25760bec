"""`make run`: the whole system on this machine, supervised in the foreground.

A newcomer's first ten minutes. The Makefile sets up and starts the services (PostgreSQL with
TimescaleDB, Kafka) first; then this module:

1. migrates the database and creates the topics (and, meanwhile, fetches the agent's wheels for
   the one-line install: `fleetpulse-ops wheelhouse`, a no-op when they are up to date);
2. starts the deployables as child processes (the API with ingest in one process when that mode
   is available, else ingest and the API apart; the stream processors) and waits until each
   answers its health check;
3. creates, through the real REST API, a demo account with a few servers, their API keys and
   alert rules (again on the next run: the account is signed into, servers are reused);
4. starts a small simulated fleet (`fleetpulse-agent simulate`) and one real agent reporting this
   machine, and waits until this machine's first sample is stored;
5. prints the URLs (the dashboard first, then the API docs and sockets), the demo credentials,
   the command to watch a server and how to add a real one with the one-line install; the
   wheels' line follows when their fetch ends (the ready line never waits for it).

Ctrl-C (or SIGTERM) stops the children in reverse order, then the services, so nothing is left
running. `FLEETPULSE_RUN_KEEP_SERVICES=1` leaves the services running (they may be shared).

Settings (environment): `FLEETPULSE_API_PORT` (8000), `FLEETPULSE_INGEST_PORT` (8001, when ingest
runs apart), `FLEETPULSE_PROCESSORS_WEB_PORT` (6066), `FLEETPULSE_RUN_DIR` (where the demo's keys,
agent spool and `demo.json` go; `.state/run`), `FLEETPULSE_RUN_AGENTS` (simulated agents, 4),
`FLEETPULSE_RUN_COMBINED` (`auto`, `1` or `0`), and the usual `FLEETPULSE_*` of every deployable.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from fleetpulse_agent.rest import RestClient, RestError
from schemas.settings import CommonSettings

from . import migrate, topics, wheelhouse
from .errors import OpsError

ROOT = Path(__file__).resolve().parent.parent

DEMO_EMAIL = "demo@example.com"
DEMO_USERNAME = "demo"
# A local demo account on loopback, printed for the newcomer: not a secret.
DEMO_PASSWORD = "fleetpulse-demo"  # noqa: S105 - the demo login is shown on screen by design
SIMULATED = ("web-1", "web-2", "db-1", "cache-1", "queue-1", "batch-1", "edge-1", "edge-2")
# Alert rules of every demo server. A `for` so that a burst (a deploy, a batch job: the simulator
# makes one of 15 s to 1 min now and then) is not an incident, and a clear threshold held for a
# while (hysteresis), so a value hovering at the threshold does not flap. The episodes they give
# over simulated time: bench/demo_flapping.py.
DEMO_RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "cpu high",
        "metric": "cpu",
        "comparison": "gt",
        "threshold": 85.0,
        "for_seconds": 30,
        "clear_threshold": 70.0,
        "clear_for_seconds": 30,
        "severity": "warning",
    },
    {
        "name": "memory high",
        "metric": "memory",
        "comparison": "gt",
        "threshold": 90.0,
        "for_seconds": 300,
        "clear_threshold": 85.0,
        "clear_for_seconds": 120,
        "severity": "warning",
    },
    {
        "name": "disk almost full",
        "metric": "disk",
        "comparison": "gt",
        "threshold": 85.0,
        "for_seconds": 600,
        "clear_threshold": 80.0,
        "clear_for_seconds": 600,
        "severity": "critical",
    },
)


@dataclass
class Child:
    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None


@dataclass(frozen=True, slots=True)
class RunConfig:
    api_port: int
    ingest_port: int
    processors_port: int
    combined: bool
    run_dir: Path
    agents: int
    keep_services: bool

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def agent_url(self) -> str:
        port = self.api_port if self.combined else self.ingest_port
        return f"ws://127.0.0.1:{port}/api/v1/agents/ws"

    @classmethod
    def from_env(cls, settings: CommonSettings) -> RunConfig:
        env = os.environ
        combined_setting = env.get("FLEETPULSE_RUN_COMBINED", "auto").lower()
        if combined_setting == "auto":
            combined = importlib.util.find_spec("ops.server") is not None
        else:
            combined = combined_setting in ("1", "true", "yes")
        return cls(
            api_port=int(env.get("FLEETPULSE_API_PORT", "8000")),
            ingest_port=int(env.get("FLEETPULSE_INGEST_PORT", "8001")),
            processors_port=int(env.get("FLEETPULSE_PROCESSORS_WEB_PORT", "6066")),
            combined=combined,
            run_dir=Path(env.get("FLEETPULSE_RUN_DIR", str(settings.state_dir / "run"))),
            agents=max(0, min(len(SIMULATED), int(env.get("FLEETPULSE_RUN_AGENTS", "4")))),
            keep_services=env.get("FLEETPULSE_RUN_KEEP_SERVICES", "") in ("1", "true", "yes"),
        )


def say(message: str) -> None:
    print(message, flush=True)


def children(cfg: RunConfig) -> list[Child]:
    py = sys.executable
    processors = Child(
        "processors", [py, "-m", "stream_processors"], f"http://127.0.0.1:{cfg.processors_port}/health"
    )
    if cfg.combined:
        api = Child("api+ingest", [py, "-m", "ops.server"], f"{cfg.api_url}/health")
        return [api, processors]
    return [
        Child("ingest", [py, "-m", "ingest"], f"http://127.0.0.1:{cfg.ingest_port}/health"),
        Child("api", [py, "-m", "api"], f"{cfg.api_url}/health"),
        processors,
    ]


def start(child: Child, logs: Path) -> None:
    with (logs / f"{child.name}.log").open("ab") as out:
        # Its own session: the terminal's Ctrl-C reaches only this supervisor, which then stops
        # the children itself, in order (agents first, the API and the processors last).
        child.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            child.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **child.env},
            cwd=ROOT,
            start_new_session=True,
        )


def wait_healthy(child: Child, timeout: float = 120.0) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.poll() is not None:
            raise SystemExit(f"{child.name} exited with code {child.proc.returncode}; see its log")
        try:
            if child.health_url is None or httpx.get(child.health_url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{child.name} did not answer {child.health_url} within {timeout:.0f} s")


STOP_GRACE_SECONDS = 20.0


def stop_all(running: list[Child], *, stop_services: bool) -> None:
    # Reverse start order: the agents stop first, then what consumes their data. One grace
    # period for all of them (not one each), so Ctrl-C always ends within it.
    for child in reversed(running):
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in reversed(running):
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"  {child.name} did not stop within {STOP_GRACE_SECONDS:g} s of the signal: killed")
            child.proc.kill()
            child.proc.wait()
    if stop_services:
        subprocess.run([str(ROOT / "infra" / "services.sh"), "stop"], check=False)  # noqa: S603 - our script


@dataclass
class Demo:
    servers: dict[str, str]  # name -> id
    keys: dict[str, str]  # name -> API key (plaintext, created this run)


async def provision(cfg: RunConfig, names: list[str]) -> Demo:
    """The demo account, its servers (reused when they exist), a fresh key each, alert rules."""
    async with RestClient(cfg.api_url) as rest:
        try:
            await rest.register(DEMO_EMAIL, DEMO_USERNAME, DEMO_PASSWORD, full_name="Demo User")
            say(f"  created the demo account {DEMO_EMAIL}")
        except RestError as exc:
            if exc.status not in (400, 409):
                raise
            await rest.login(DEMO_EMAIL, DEMO_PASSWORD)
            say(f"  signed in as the existing demo account {DEMO_EMAIL}")
        existing = {s["name"]: str(s["id"]) for s in await rest.servers()}
        servers: dict[str, str] = {}
        keys: dict[str, str] = {}
        for name in names:
            if name in existing:
                servers[name] = existing[name]
            else:
                created = await rest.create_server(name, host="127.0.0.1", metadata={"demo": True})
                servers[name] = str(created["id"])
            key = await rest.create_key(servers[name], name=f"make run {time.strftime('%Y-%m-%d %H:%M')}")
            keys[name] = str(key["key"])
        have = {(str(r["rule"]["server_id"]), r["rule"]["name"]) for r in await rest.rules()}
        for server_id in servers.values():
            for rule in DEMO_RULES:
                if (server_id, rule["name"]) not in have:
                    await rest.create_rule({**rule, "server_id": server_id})
        rules = ", ".join(
            f"{r['metric']} > {r['threshold']:g} % for {r['for_seconds']:g} s, clear {r['clear_threshold']:g}"
            for r in DEMO_RULES
        )
        say(f"  {len(servers)} servers, {len(keys)} API keys, alert rules on each: {rules}")
        return Demo(servers=servers, keys=keys)


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def agent_children(cfg: RunConfig, demo: Demo, this_machine: str, simulated: list[str]) -> list[Child]:
    py = sys.executable
    out: list[Child] = []
    if simulated:
        keys_file = cfg.run_dir / "simulated-keys.txt"
        write_private(keys_file, "".join(demo.keys[n] + "\n" for n in simulated))
        argv = [
            py,
            "-m",
            "fleetpulse_agent",
            "simulate",
            "--agents",
            str(len(simulated)),
            "--keys-file",
            str(keys_file),
        ]
        argv += ["--server-url", cfg.agent_url, "--churn-seconds", "300", "--startup-spread", "2"]
        out.append(Child("simulator", argv, None))
    agent_env = {
        "FLEETPULSE_AGENT_SERVER_URL": cfg.agent_url,
        "FLEETPULSE_AGENT_API_KEY": demo.keys[this_machine],
        "FLEETPULSE_AGENT_STATE_DIR": str(cfg.run_dir / "agent"),
        "FLEETPULSE_AGENT_STARTUP_JITTER_SECONDS": "0",
    }
    out.append(Child("agent", [py, "-m", "fleetpulse_agent", "run"], None, env=agent_env))
    return out


def wait_first_sample(database_url: str, server_id: str, timeout: float = 60.0) -> float | None:
    """Seconds until the server's first sample is stored, or None: the whole pipeline answered."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with psycopg.connect(database_url, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT 1 FROM metrics WHERE server_id = %s LIMIT 1", (uuid.UUID(server_id),)
                ).fetchone()
            if row is not None:
                return time.monotonic() - started
        except psycopg.Error:
            pass
        time.sleep(0.5)
    return None


def check(running: list[Child]) -> None:
    for child in running:
        if child.proc is not None and child.proc.poll() is not None:
            raise SystemExit(f"{child.name} exited with code {child.proc.returncode}; stopping")


def banner(cfg: RunConfig, demo: Demo, this_machine: str, logs: Path) -> str:
    ws = cfg.api_url.replace("http://", "ws://")
    sid = demo.servers[this_machine]
    dashboard = (
        f"{cfg.api_url}/" if (ROOT / "web" / "dist" / "index.html").is_file() else "not built (make web)"
    )
    lines = [
        "",
        "FleetPulse is running. Ctrl-C stops everything.",
        "",
        f"  dashboard       {dashboard}   sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}",
        f"  API docs        {cfg.api_url}/docs",
        f"  REST API        {cfg.api_url}/api/v1",
        f"  agent socket    {cfg.agent_url}",
        f"  live metrics    {ws}/api/v1/ws/metrics/{{server_id}}   e.g. {ws}/api/v1/ws/metrics/{sid}",
        f"  live logs       {ws}/api/v1/ws/logs/{{server_id}}",
        f"  logs            {logs}/",
        "",
        f"  demo login      {DEMO_EMAIL} / {DEMO_PASSWORD}",
        f"  servers         {', '.join(demo.servers)}   ({this_machine}: this machine, a real agent)",
        "",
        "  Watch a server (history first, then live), in another terminal:",
        f"    .venv/bin/fleetpulse watch {this_machine}",
        "  Sign in once for the other commands (servers, keys, rules, alerts, run):",
        f"    .venv/bin/fleetpulse login --api {cfg.api_url} --email {DEMO_EMAIL}",
        "  Add a real server: `fleetpulse keys create <server>` prints its one-line install",
        f"    (curl -fsSL {cfg.api_url}/install.sh | sudo sh -s -- --key fpk_...)",
        "",
    ]
    return "\n".join(lines)


class Wheels(threading.Thread):
    """`fleetpulse-ops wheelhouse` on a thread: the API serves the folder at /agent/wheels/."""

    def __init__(self, dest: Path) -> None:
        super().__init__(name="wheelhouse", daemon=True)
        self.dest = dest
        self.error: str | None = None

    def run(self) -> None:
        try:
            wheelhouse.build(self.dest)
        except (OpsError, OSError) as exc:
            self.error = str(exc).splitlines()[0]

    def result(self) -> str:
        self.join()
        if self.error is not None:
            return f"  the agent's wheels could not be built ({self.error}): the one-line install needs them"
        count = len(list(self.dest.glob("*.whl")))
        return f"  the agent's wheels for the one-line install: {count} in {self.dest}"


def main() -> None:
    settings = CommonSettings()
    cfg = RunConfig.from_env(settings)
    t0 = time.monotonic()
    running: list[Child] = []

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops everything as Ctrl-C does, whatever step is running

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C must stop everything even when SIGINT came in ignored (a job started in the
    # background of a non-interactive shell inherits SIG_IGN, and Python then keeps it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # The agent's wheels for the one-line install, fetched while the rest starts (a no-op when warm).
    wheels = Wheels(settings.state_dir / "wheelhouse")
    wheels.start()
    try:
        say("[run] migrating the database and creating the topics")
        applied = migrate.apply(settings.database_url)
        created = asyncio.run(
            topics.ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, settings.topic_partitions)
        )
        say(f"  {len(applied)} migration(s) applied, {len(created)} topic(s) created")
        say("[run] starting the services of FleetPulse")
        for child in children(cfg):
            start(child, logs)
            running.append(child)
        for child in running:
            waited = wait_healthy(child)
            say(f"  {child.name:<11} up after {waited:4.1f} s   {child.health_url}   (log: {child.name}.log)")
        say("[run] creating the demo account, servers, keys and alert rules (through the REST API)")
        this_machine = socket.gethostname().split(".")[0] or "this-machine"
        simulated = [n for n in SIMULATED if n != this_machine][: cfg.agents]
        demo = asyncio.run(provision(cfg, [this_machine, *simulated]))
        demo_file = cfg.run_dir / "demo.json"
        demo_info = {"api_url": cfg.api_url, "email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        write_private(demo_file, json.dumps({**demo_info, "servers": demo.servers}))
        say(f"[run] starting {len(simulated)} simulated agent(s) and one real agent for {this_machine}")
        for child in agent_children(cfg, demo, this_machine, simulated):
            start(child, logs)
            running.append(child)
        waited_sample = wait_first_sample(settings.database_url, demo.servers[this_machine])
        check(running)
        if waited_sample is None:
            say("  this machine's first sample is not stored after 60 s: see the logs")
        else:
            say(
                f"  this machine's first sample stored after {waited_sample:.1f} s "
                "(agent, ingest, Kafka, processors, database: the pipeline works)"
            )
        say(banner(cfg, demo, this_machine, logs))
        say(f"(ready in {time.monotonic() - t0:.0f} s)")
        # The wheels matter only to the one-line install of another server: a cold (or stale)
        # build downloads from PyPI for a minute or more, so it never holds the ready line back.
        wheels_told = False
        while True:
            check(running)
            if not wheels_told and not wheels.is_alive():
                say(wheels.result())
                wheels_told = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RestError as exc:
        say(f"[run] the REST API refused a step: {exc}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        say("\n[run] stopping...")
        stop_all(running, stop_services=not cfg.keep_services)
        say("[run] stopped")


if __name__ == "__main__":
    main()
