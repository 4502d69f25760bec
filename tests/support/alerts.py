"""Helpers of the alert engine tests: alert workers as real subprocesses, rules and samples on
the real topics, waiting on the alerts table."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ops.topics import ensure_topics
from schemas import topics
from schemas.alerts import ALERT_EVENT, AlertEvent, AlertRule, rule_key
from schemas.canonical import DiskSample, MetricSample
from schemas.settings import CommonSettings, Environment
from tests.support.topics import read_from_beginning, sub_prefix

ROOT = Path(__file__).resolve().parent.parent.parent
PARTITIONS = 4
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AlertEnv:
    """A topic namespace of one test module, and the database of the session."""

    common: CommonSettings
    prefix: str
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def topic(self, spec: topics.TopicSpec) -> str:
        return spec.name(self.prefix)

    def worker(self, app_id: str, **settings: Any) -> Worker:
        env = dict(os.environ)
        env.update(
            {
                "FLEETPULSE_ENV": "test",
                "FLEETPULSE_KAFKA_BOOTSTRAP": self.common.kafka_bootstrap,
                "FLEETPULSE_DATABASE_URL": self.common.database_url,
                "FLEETPULSE_TOPIC_PREFIX": self.prefix,
                "FLEETPULSE_TOPIC_PARTITIONS": str(PARTITIONS),
                "FLEETPULSE_STATE_DIR": str(self.tmp / f"state-{uuid.uuid4().hex[:6]}"),
                "FLEETPULSE_PROCESSORS_ALERTS_WORKER_APP_ID": app_id,
                "FLEETPULSE_PROCESSORS_ALERTS_WORKER_WEB_PORT": str(free_port()),
                "FLEETPULSE_PROCESSORS_ALERTS_TICK_SECONDS": "1",
                "FLEETPULSE_PROCESSORS_ALERTS_NOTIFY_BACKOFF_SECONDS": "0.05",
                "FLEETPULSE_PROCESSORS_ALERTS_NOTIFY_BACKOFF_MAX_SECONDS": "0.2",
                "FLEETPULSE_PROCESSORS_ALERTS_OWNERS_TTL_SECONDS": "1",
                "FLEETPULSE_PROCESSORS_ALERTS_SESSION_TIMEOUT_SECONDS": "6",
                "FLEETPULSE_PROCESSORS_ALERTS_HEARTBEAT_INTERVAL_SECONDS": "1",
            }
        )
        for name, value in settings.items():
            env[f"FLEETPULSE_PROCESSORS_ALERTS_{name.upper()}"] = str(value)
        worker = Worker(
            [
                sys.executable,
                "-m",
                "stream_processors.alerts",
                "worker",
                "-l",
                os.environ.get("FLEETPULSE_TEST_WORKER_LOGLEVEL", "warn"),
            ],
            env,
            self.tmp / f"{app_id}-{len(self.workers)}.log",
        )
        self.workers.append(worker)
        return worker


class Worker:
    """One faust worker process (real: killed and restarted by the tests)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed or committed on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def web_port(self) -> int:
        return int(self.env["FLEETPULSE_PROCESSORS_ALERTS_WORKER_WEB_PORT"])

    async def has_rules(
        self, rule_ids: AbstractSet[uuid.UUID], absent: AbstractSet[uuid.UUID] = frozenset()
    ) -> bool:
        """Whether the worker evaluates these rules now (and none of `absent`)."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.web_port}/alerts/rules")
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return False
        loaded = {uuid.UUID(r) for r in body["rules"]}
        return bool(body["ready"]) and rule_ids <= loaded and not (absent & loaded)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


async def new_env(database_url: str, kafka_bootstrap: str, tmp: Path, prefix: str | None = None) -> AlertEnv:
    """Topics in a namespace of their own (by default inside the test session's, deleted with it)."""
    prefix = prefix or sub_prefix("alerts")
    await ensure_topics(kafka_bootstrap, prefix, PARTITIONS)
    common = CommonSettings(
        env=Environment.TEST,
        state_dir=tmp / "state",
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=prefix,
        topic_partitions=PARTITIONS,
    )
    return AlertEnv(common=common, prefix=prefix, tmp=tmp)


class Bus:
    """A producer onto the test namespace's topics."""

    def __init__(self, env: AlertEnv) -> None:
        self.env = env
        self.producer = AIOKafkaProducer(bootstrap_servers=env.common.kafka_bootstrap, acks="all")

    async def __aenter__(self) -> Bus:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def rule(self, rule: AlertRule) -> None:
        await self.producer.send_and_wait(
            self.env.topic(topics.ALERT_RULES), rule.to_bytes(), key=rule_key(rule.rule_id)
        )

    async def delete_rule(self, rule_id: uuid.UUID) -> None:
        await self.producer.send_and_wait(self.env.topic(topics.ALERT_RULES), None, key=rule_key(rule_id))

    async def samples(self, samples: Sequence[MetricSample]) -> None:
        for s in samples:
            await self.producer.send(
                self.env.topic(topics.METRICS), s.to_bytes(), key=topics.server_key(s.server_id)
            )
        await self.producer.flush()


def make_sample(
    server_id: uuid.UUID,
    seconds: float,
    cpu: float = 10.0,
    memory: float = 10.0,
    *,
    received_at: datetime | None = None,
    disk_percent: float | None = None,
) -> MetricSample:
    t = T0 + timedelta(seconds=seconds)
    disks: tuple[DiskSample, ...] = ()
    if disk_percent is not None:
        used = int(disk_percent * 10)
        disks = (
            DiskSample(
                mount="/", total_bytes=1000, used_bytes=used, free_bytes=1000 - used, percent=disk_percent
            ),
        )
    return MetricSample(
        server_id=server_id,
        time=t,
        received_at=received_at or t,
        cpu_percent=cpu,
        memory_percent=memory,
        disks=disks,
    )


def make_rule(server_id: uuid.UUID | None, owner_id: uuid.UUID, **kw: Any) -> AlertRule:
    values: dict[str, Any] = {
        "rule_id": uuid.uuid4(),
        "owner_id": owner_id,
        "server_id": server_id,
        "name": "cpu high",
        "metric": "cpu",
        "comparison": "gt",
        "threshold": 90.0,
        "updated_at": datetime.now(UTC),
    }
    values.update(kw)
    return AlertRule(**values)


Row = dict[str, Any]


async def episodes(dsn: str, rule_id: uuid.UUID) -> list[Row]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            """SELECT episode_id, server_id, subject, state, started_at, fired_at, fired_value,
                      resolved_at, resolved_value
                 FROM alerts WHERE rule_id = %s ORDER BY started_at, server_id""",
            (rule_id,),
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def wait_for(
    what: str,
    probe: Callable[[], Awaitable[Any]],
    *,
    within: float = 90.0,
    workers: Sequence[Worker] = (),
) -> Any:
    """Poll `probe` until it returns something truthy; fail with the workers' logs after `within`."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n---\n".join(w.log() for w in workers)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None and w.proc.returncode not in (0, -9, -15):
                raise AssertionError(f"worker died ({w.proc.returncode}) while waiting for {what}\n{w.log()}")
        await asyncio.sleep(0.2)


class Sentinel:
    """Proves a worker has processed a server's samples up to a point: a `memory > 50` rule on
    the server, and a sample with memory 60 at that point. Its episode appears only after every
    earlier sample of the server (same partition, in order) was evaluated."""

    def __init__(self, bus: Bus, dsn: str, server_id: uuid.UUID, owner_id: uuid.UUID) -> None:
        self.bus, self.dsn, self.server_id = bus, dsn, server_id
        self.rule = make_rule(server_id, owner_id, name="sentinel", metric="memory", threshold=50.0)

    async def install(self) -> None:
        await self.bus.rule(self.rule)

    async def mark(
        self, seconds: float, workers: Sequence[Worker], within: float = 90.0, cpu: float = 10.0
    ) -> None:
        # A normal sample just before ends the previous mark's episode, so this one starts anew.
        await self.bus.samples(
            [
                make_sample(self.server_id, seconds - 0.5, cpu, memory=10.0),
                make_sample(self.server_id, seconds, cpu, memory=60.0),
            ]
        )
        started = T0 + timedelta(seconds=seconds)

        async def seen() -> bool:
            return any(r["started_at"] == started for r in await episodes(self.dsn, self.rule.rule_id))

        await wait_for(f"sentinel at {seconds}s", seen, within=within, workers=workers)


# How long a worker process may take to start and read the rules topic: its Python imports alone
# took 93 s on the 2-core machine at a load average of 34 (alert stall loop, 3 December). A start
# is not a stall: the waits that follow, on samples being evaluated, keep their own limits.
START_SECONDS = 300.0


async def rules_loaded(
    workers: Sequence[Worker], *rules: AlertRule | Sentinel, within: float = START_SECONDS
) -> None:
    """Wait until every worker evaluates these rules (rules travel apart from samples); for a
    worker just started, this is also the wait for its process to be up."""
    ids = {r.rule.rule_id if isinstance(r, Sentinel) else r.rule_id for r in rules}
    for worker in workers:
        probe = functools.partial(worker.has_rules, ids)
        await wait_for(f"rules loaded on {worker.log_path.name}", probe, workers=[worker], within=within)


async def group_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group once it is stable (0 while it rebalances or is empty)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        group_info = response.groups[0]
        state, members = group_info[2], group_info[5]
        return len(members) if state == "Stable" else 0
    finally:
        await admin.close()


async def add_owner_with_servers(dsn: str, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A user and `count` servers of theirs (owner-wide rules and channels need them)."""
    owner = uuid.uuid4()
    servers = [uuid.uuid4() for _ in range(count)]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
            (owner, f"{owner.hex}@example.test", owner.hex),
        )
        for i, server in enumerate(servers):
            await conn.execute(
                "INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, %s)", (server, owner, f"srv-{i}")
            )
    return owner, servers


async def alert_events(env: AlertEnv, server_ids: set[uuid.UUID]) -> list[AlertEvent]:
    """Every AlertEvent on the alerts topic so far for these servers (read from the beginning)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env.common.kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await read_from_beginning(consumer, env.topic(topics.ALERTS))
        end = await consumer.end_offsets(tps)
        found = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = ALERT_EVENT.validate_json(record.value)
                    if event.server_id in server_ids:
                        found.append(event)
        return found
    finally:
        await consumer.stop()
