"""The reference agent on the real stack: a real ingest process (killed and restarted), the real
Kafka, the persistence processor and TimescaleDB.

- metrics sampled by the agent land in TimescaleDB, with every disk and interface;
- ingest is killed (SIGKILL) and restarted while the agent keeps sampling: every sample of that
  period arrives exactly once, with the timestamp it was sampled at;
- the agent is killed (SIGKILL) with unacknowledged frames in its spool and started again: they
  arrive, exactly once;
- a refused key stops the agent fast, with the reason and exit code 3;
- tailed log lines (across a rotation) land in the logs table;
- commands published as the API does reach the agent through ingest: refused when disabled or not
  allowlisted, timed out, output capped, measured; a Docker action without a daemon fails clearly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fleetpulse_agent.collector import Collector
from fleetpulse_agent.settings import AgentSettings, settings
from fleetpulse_agent.spool import DiskSpool
from fleetpulse_agent.wire import MetricsFrame
from schemas import apikeys, topics
from schemas.agent_wire import AGENT_FRAME, SeedMetricsFrame
from schemas.canonical import COMMAND_RESULT, CommandRequest, CommandResult, utcnow
from schemas.settings import CommonSettings
from tests.support.persist import PersistEnv, new_env, running, wait_until

ROOT = Path(__file__).resolve().parents[2]
PEPPER = "agent-stack-test-pepper-" + "k" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(common: CommonSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
    env.update(
        FLEETPULSE_ENV="test",
        FLEETPULSE_KEY_PEPPER=PEPPER,
        FLEETPULSE_DATABASE_URL=common.database_url,
        FLEETPULSE_KAFKA_BOOTSTRAP=common.kafka_bootstrap,
        FLEETPULSE_TOPIC_PREFIX=common.topic_prefix,
        FLEETPULSE_TOPIC_PARTITIONS=str(common.topic_partitions),
        FLEETPULSE_STATE_DIR=str(common.state_dir),
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    """A child process of the test, with its output in a log file (shown when a test fails)."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return int(self.proc.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Ingest(Proc):
    port: int

    @classmethod
    def make(cls, common: CommonSettings, port: int, log: Path) -> Ingest:
        env = service_env(common, FLEETPULSE_INGEST_PORT=str(port), FLEETPULSE_INGEST_HOST="127.0.0.1")
        ingest = cls([sys.executable, "-m", "ingest"], env, log)
        ingest.port = port
        return ingest

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/agents/ws"

    async def ready(self, within: float = 60.0) -> None:
        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                async with httpx.AsyncClient() as client:
                    return (
                        await client.get(f"http://127.0.0.1:{self.port}/health", timeout=2)
                    ).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(healthy, timeout=within, what="ingest to answer /health")


@dataclass
class Stack:
    env: PersistEnv
    server_id: uuid.UUID
    key: str
    ingest: Ingest
    tmp: Path


async def add_server_with_key(dsn: str, name: str) -> tuple[uuid.UUID, str]:
    owner, server = uuid.uuid4(), uuid.uuid4()
    key, parsed = apikeys.generate()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
            (owner, f"{owner.hex[:8]}@example.com", f"agent-{owner.hex[:8]}"),
        )
        await conn.execute(
            "INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, %s)", (server, owner, name)
        )
        await conn.execute(
            "INSERT INTO api_keys (id, server_id, lookup_id, secret_hash) VALUES (%s, %s, %s, %s)",
            (uuid.uuid4(), server, parsed.lookup_id, apikeys.hash_secret(PEPPER.encode(), parsed.secret)),
        )
    return server, key


@pytest.fixture
async def stack(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Stack]:
    env = await new_env(database_url, kafka_bootstrap, tmp_path / "state")
    server_id, key = await add_server_with_key(database_url, f"agent-{uuid.uuid4().hex[:6]}")
    ingest = Ingest.make(env.common, free_port(), tmp_path / "ingest.log")
    try:
        yield Stack(env, server_id, key, ingest, tmp_path)
    finally:
        ingest.kill()


@contextlib.asynccontextmanager
async def persisting(env: PersistEnv) -> AsyncIterator[None]:
    async with running(env.settings()):
        yield


async def metric_times(dsn: str, server_id: uuid.UUID) -> list[datetime]:
    """Every stored sample time of the server (with repeats, if any were stored twice)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT time FROM metrics WHERE server_id = %s ORDER BY time", (server_id,))
        return [row[0] for row in await cur.fetchall()]


async def scalar(dsn: str, sql: str, *params: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(sql, params)).fetchone()
        return None if row is None else row[0]


def agent_settings(stack: Stack, url: str, **kw: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "server_url": url,
        "api_key": stack.key,
        "state_dir": stack.tmp / "agent",
        "interval_seconds": 0.5,
        "startup_jitter_seconds": 0,
        "backoff_initial_seconds": 0.2,
        "backoff_max_seconds": 1.0,
        "ack_timeout_seconds": 10,
        "replay_rate_per_second": 50,
    }
    values.update(kw)
    return settings(**values)


def agent_process(stack: Stack, url: str, log: Path, **settings: str) -> Proc:
    env = service_env(
        stack.env.common,
        FLEETPULSE_AGENT_SERVER_URL=url,
        FLEETPULSE_AGENT_API_KEY=stack.key,
        FLEETPULSE_AGENT_STATE_DIR=str(stack.tmp / "agent"),
        FLEETPULSE_AGENT_INTERVAL_SECONDS="0.5",
        FLEETPULSE_AGENT_STARTUP_JITTER_SECONDS="0",
        FLEETPULSE_AGENT_BACKOFF_INITIAL_SECONDS="0.2",
        FLEETPULSE_AGENT_BACKOFF_MAX_SECONDS="1",
        FLEETPULSE_AGENT_REPLAY_RATE_PER_SECOND="50",
    )
    env.update({f"FLEETPULSE_AGENT_{k.upper()}": v for k, v in settings.items()})
    return Proc([sys.executable, "-m", "fleetpulse_agent", "run"], env, log)


async def spooled_times(path: Path) -> list[datetime]:
    spool = await DiskSpool.open(path, 1_000_000)
    try:
        frames = [AGENT_FRAME.validate_json(f) for _, f in await spool.pending(0, 1_000_000)]
    finally:
        await spool.close()
    return [f.timestamp for f in frames if isinstance(f, SeedMetricsFrame)]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The timestamp of every sample the in-process agent takes, in order."""
    times: list[datetime] = []
    original = Collector.sample

    def sample(self: Collector) -> MetricsFrame:
        frame = original(self)
        times.append(frame.timestamp)
        return frame

    monkeypatch.setattr(Collector, "sample", sample)
    yield times


async def test_agent_metrics_land_in_timescaledb(stack: Stack, recorded: list[datetime]) -> None:
    from fleetpulse_agent.runner import run_agent

    stack.ingest.start()
    await stack.ingest.ready()
    dsn = stack.env.common.database_url
    stop = asyncio.Event()
    async with persisting(stack.env):
        agent = asyncio.create_task(run_agent(agent_settings(stack, stack.ingest.url), stop))
        try:

            async def three_rows() -> bool:
                assert not agent.done(), agent
                return len(await metric_times(dsn, stack.server_id)) >= 3

            await wait_until(three_rows, timeout=90, what="3 samples in the metrics table")
        finally:
            stop.set()
            await asyncio.wait_for(agent, 30)
    stored = await metric_times(dsn, stack.server_id)
    assert set(stored) <= set(recorded)  # stored with the time it was sampled at
    disks = await scalar(
        dsn, "SELECT count(*) FROM metric_disks WHERE server_id = %s AND mount = '/'", stack.server_id
    )
    ifaces = await scalar(
        dsn,
        "SELECT count(*) FROM metric_interfaces WHERE server_id = %s AND interface = 'lo'",
        stack.server_id,
    )
    assert disks >= 3 and ifaces >= 3
    cores = await scalar(dsn, "SELECT max(cpu_cores) FROM metrics WHERE server_id = %s", stack.server_id)
    assert cores == os.cpu_count()


async def test_ingest_killed_and_restarted_every_sample_arrives_exactly_once(
    stack: Stack, recorded: list[datetime]
) -> None:
    from fleetpulse_agent.runner import run_agent

    stack.ingest.start()
    await stack.ingest.ready()
    dsn = stack.env.common.database_url
    settings = agent_settings(stack, stack.ingest.url)
    stop = asyncio.Event()
    async with persisting(stack.env):
        agent = asyncio.create_task(run_agent(settings, stop))
        try:

            async def stored_at_least(n: int) -> bool:
                assert not agent.done(), agent
                return len(await metric_times(dsn, stack.server_id)) >= n

            await wait_until(lambda: stored_at_least(3), timeout=90, what="3 samples stored before the kill")
            stack.ingest.kill()  # SIGKILL: acks in flight are lost, frames stay in the spool
            killed_at = len(recorded)

            async def sampled_while_down() -> bool:
                return len(recorded) >= killed_at + 6

            await wait_until(sampled_while_down, timeout=60, what="6 samples taken while ingest is down")
            outage = list(recorded[killed_at:])
            stack.ingest.start()
            await stack.ingest.ready()

            async def outage_stored() -> bool:
                assert not agent.done(), agent
                return set(outage) <= set(await metric_times(dsn, stack.server_id))

            await wait_until(outage_stored, timeout=120, what="the outage's samples stored after the restart")
        finally:
            stop.set()
            await asyncio.wait_for(agent, 30)
        # Whatever the agent still holds unacked at its stop is not lost: it is in its spool.
        unacked = await spooled_times(settings.spool_path)

        async def settled() -> bool:
            return set(await metric_times(dsn, stack.server_id)) | set(unacked) >= set(recorded)

        await wait_until(settled, timeout=60, what="every acknowledged sample persisted")
    stored = await metric_times(dsn, stack.server_id)
    assert len(stored) == len(set(stored)), "a sample was stored twice"
    assert set(stored) | set(unacked) == set(recorded)  # each with its original timestamp
    assert set(outage) <= set(stored)


async def test_agent_killed_with_unacked_frames_sends_them_after_restart(stack: Stack) -> None:
    dsn = stack.env.common.database_url
    spool_path = stack.tmp / "agent" / "spool.sqlite3"
    # No ingest yet: every sample stays unacknowledged in the spool.
    first = agent_process(stack, stack.ingest.url, stack.tmp / "agent-1.log").start()
    try:

        async def spooled() -> bool:
            assert first.proc is not None and first.proc.poll() is None, first.output()
            return spool_path.exists() and len(await spooled_times(spool_path)) >= 5

        await wait_until(spooled, timeout=60, what="5 unacked frames in the agent's spool")
    finally:
        first.kill()  # SIGKILL: no chance to flush or say goodbye
    unacked = await spooled_times(spool_path)
    assert len(unacked) >= 5

    stack.ingest.start()
    await stack.ingest.ready()
    async with persisting(stack.env):
        second = agent_process(stack, stack.ingest.url, stack.tmp / "agent-2.log").start()
        try:

            async def arrived() -> bool:
                assert second.proc is not None and second.proc.poll() is None, second.output()
                return set(unacked) <= set(await metric_times(dsn, stack.server_id))

            await wait_until(arrived, timeout=120, what="the killed agent's spooled frames stored")
        finally:
            code = second.stop()
    assert code == 0, second.output()
    assert "replaying them" in second.output()
    stored = await metric_times(dsn, stack.server_id)
    assert len(stored) == len(set(stored))


async def test_a_refused_key_stops_the_agent_with_the_reason(stack: Stack) -> None:
    stack.ingest.start()
    await stack.ingest.ready()
    bad_key, _ = apikeys.generate()
    proc = agent_process(stack, stack.ingest.url, stack.tmp / "agent-bad.log", api_key=bad_key).start()
    assert proc.proc is not None
    code = await asyncio.to_thread(proc.proc.wait, 60)
    assert code == 3
    assert "Invalid or inactive API key" in proc.output()
    assert "not retrying" in proc.output()


async def test_tailed_log_lines_land_in_timescaledb(stack: Stack) -> None:
    from fleetpulse_agent.runner import run_agent

    stack.ingest.start()
    await stack.ingest.ready()
    dsn = stack.env.common.database_url
    app_log = stack.tmp / "app.log"
    app_log.write_text("written before the agent started: not sent\n")
    settings = agent_settings(stack, stack.ingest.url, log_files=[app_log], log_poll_seconds=0.2)
    stop = asyncio.Event()
    async with persisting(stack.env):
        agent = asyncio.create_task(run_agent(settings, stop))
        try:
            await wait_until(
                lambda: _has_rows(dsn, stack.server_id), timeout=90, what="the agent's first sample stored"
            )
            with app_log.open("a") as f:
                f.write("ERROR payment service unreachable\nINFO recovered\n")
            app_log.rename(stack.tmp / "app.log.1")  # rotated
            app_log.write_text("WARN after rotation\n")

            async def logged() -> bool:
                assert not agent.done(), agent
                n = await scalar(dsn, "SELECT count(*) FROM logs WHERE server_id = %s", stack.server_id)
                return int(n) >= 3

            await wait_until(logged, timeout=90, what="3 log lines stored")
        finally:
            stop.set()
            await asyncio.wait_for(agent, 30)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT level, message, source FROM logs WHERE server_id = %s ORDER BY time, message",
            (stack.server_id,),
        )
        rows = await cur.fetchall()
    assert sorted((level, message) for level, message, _ in rows) == [
        ("ERROR", "ERROR payment service unreachable"),
        ("INFO", "INFO recovered"),
        ("WARNING", "WARN after rotation"),
    ]
    assert {source for _, _, source in rows} == {str(app_log)}


async def _has_rows(dsn: str, server_id: uuid.UUID) -> bool:
    return bool(await metric_times(dsn, server_id))


async def run_commands(
    stack: Stack, requests: list[CommandRequest], **agent: Any
) -> dict[uuid.UUID, CommandResult]:
    """Start ingest and an in-process agent, publish the requests as the API does, and collect
    the results ingest publishes from the agent's answers."""
    from fleetpulse_agent.runner import run_agent

    prefix = stack.env.prefix
    stack.ingest.start()
    await stack.ingest.ready()
    dsn = stack.env.common.database_url
    stop = asyncio.Event()
    agent_task = asyncio.create_task(run_agent(agent_settings(stack, stack.ingest.url, **agent), stop))
    consumer = AIOKafkaConsumer(
        topics.COMMAND_RESULTS.name(prefix),
        bootstrap_servers=stack.env.common.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.env.common.kafka_bootstrap, acks="all")
    await producer.start()
    results: dict[uuid.UUID, CommandResult] = {}
    try:

        async def held() -> bool:
            assert not agent_task.done(), agent_task
            n = await scalar(
                dsn, "SELECT count(*) FROM agent_connections WHERE server_id = %s", stack.server_id
            )
            return int(n) == 1

        await wait_until(held, timeout=60, what="ingest to hold the agent's socket")
        for request in requests:
            await producer.send_and_wait(
                topics.COMMANDS.name(prefix), request.to_bytes(), key=topics.server_key(stack.server_id)
            )
        wanted = {r.command_id for r in requests}

        async def answered() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    result = COMMAND_RESULT.validate_json(record.value)
                    if result.command_id in wanted:
                        results[result.command_id] = result
            return set(results) == wanted

        await wait_until(answered, timeout=90, what="every command answered")
    finally:
        stop.set()
        await asyncio.wait_for(agent_task, 30)
        await producer.stop()
        await consumer.stop()
    return results


def command(
    stack: Stack, action: str, text: str | None = None, container: str | None = None
) -> CommandRequest:
    now = utcnow()
    return CommandRequest(
        command_id=uuid.uuid4(),
        server_id=stack.server_id,
        action=action,
        command=text,
        container_id=container,
        timeout_seconds=60,
        requested_at=now,
        deadline=now + timedelta(seconds=60),
    )


async def test_commands_on_the_real_stack_allowlisted_timed_out_capped_and_docker_without_daemon(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{stack.tmp}/no-docker.sock")
    ok = command(stack, "shell", "echo hello fleet")
    refused = command(stack, "shell", "cat /etc/shadow")
    slow = command(stack, "shell", "sleep 30")
    loud = command(stack, "shell", "yes")
    docker = command(stack, "restart", container="web")
    results = await run_commands(
        stack,
        [ok, refused, slow, loud, docker],
        commands_enabled=True,
        command_allowlist=[r"echo [a-z ]+", r"sleep [0-9]+", r"yes"],
        command_timeout_seconds=1.5,
        command_max_output_bytes=2000,
        docker_actions_enabled=True,
    )
    r = results[ok.command_id]
    assert r.success and r.exit_code == 0 and r.output == "hello fleet\n" and r.duration_ms is not None
    r = results[refused.command_id]
    assert not r.success and r.exit_code == 126 and r.error == "command not in this agent's allowlist"
    r = results[slow.command_id]
    assert not r.success and r.exit_code == 124 and "timed out after 1.5 s" in (r.error or "")
    assert r.duration_ms is not None and r.duration_ms >= 1500
    r = results[loud.command_id]
    assert not r.success and len((r.output or "").encode()) == 2000 and "2000 bytes" in (r.error or "")
    r = results[docker.command_id]
    assert not r.success and (r.message or "").startswith("Docker daemon not reachable")


async def test_commands_are_refused_when_the_operator_did_not_enable_them(stack: Stack) -> None:
    shell = command(stack, "shell", "echo hi")
    docker = command(stack, "stop", container="web")
    results = await run_commands(stack, [shell, docker])
    assert results[shell.command_id].exit_code == 126
    assert "commands are disabled on this agent" in (results[shell.command_id].error or "")
    assert not results[docker.command_id].success
    assert "Docker actions are disabled" in (results[docker.command_id].message or "")
