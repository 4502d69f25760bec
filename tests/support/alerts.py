"""Helpers of the alert engine tests: alert workers as real subprocesses, rules and samples on
the real topics, waiting on the alerts table."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from ops.topics import ensure_topics
from schemas import topics
from schemas.alerts import AlertRule, rule_key
from schemas.canonical import DiskSample, MetricSample
from schemas.settings import CommonSettings, Environment

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

    def worker(self, app_id: str, *, module: str | None = None, **settings: Any) -> Worker:
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
            }
        )
        for name, value in settings.items():
            env[f"FLEETPULSE_PROCESSORS_ALERTS_{name.upper()}"] = str(value)
        target = ["stream_processors.alerts.code", module] if module else ["stream_processors.alerts"]
        worker = Worker(
            [sys.executable, "-m", *target, "worker", "-l", "warn"],
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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


async def new_env(database_url: str, kafka_bootstrap: str, tmp: Path) -> AlertEnv:
    prefix = f"test-alerts-{uuid.uuid4().hex[:8]}."
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

    async def mark(self, seconds: float, workers: Sequence[Worker], within: float = 90.0) -> None:
        await self.bus.samples([make_sample(self.server_id, seconds, memory=60.0)])
        started = T0 + timedelta(seconds=seconds)

        async def seen() -> bool:
            return any(r["started_at"] == started for r in await episodes(self.dsn, self.rule.rule_id))

        await wait_for(f"sentinel at {seconds}s", seen, within=within, workers=workers)
