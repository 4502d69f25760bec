"""Helpers of the persistence processor tests: canonical messages, producing, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from ops.topics import ensure_topics
from schemas import topics
from schemas.canonical import (
    AgentEvent,
    CommandResult,
    DiskSample,
    InterfaceSample,
    LogRecord,
    MetricSample,
    log_entry_id,
    utcnow,
)
from schemas.settings import CommonSettings, Environment
from stream_processors.db import Database
from stream_processors.persist import PersistenceService
from stream_processors.settings import ProcessorSettings
from tests.support.topics import sub_prefix

PARTITIONS = 4


@dataclass
class PersistEnv:
    """A topic namespace of one test (so its consumer groups see only its own messages)."""

    common: CommonSettings
    prefix: str

    def topic(self, spec: topics.TopicSpec) -> str:
        return spec.name(self.prefix)

    def settings(self, **overrides: Any) -> ProcessorSettings:
        values: dict[str, Any] = {
            "common": self.common,
            "app_id": f"persist-{uuid.uuid4().hex[:6]}",
            "batch_max_records": 200,
            "batch_within_seconds": 0.2,
            "db_retry_initial_seconds": 0.05,
            "db_retry_max_seconds": 0.5,
            "db_connect_timeout_seconds": 2.0,
            "kafka_session_timeout_ms": 10_000,
            "kafka_heartbeat_interval_ms": 1_000,
        }
        values.update(overrides)
        return ProcessorSettings(**values)


async def new_env(database_url: str, kafka_bootstrap: str, state_dir: Path) -> PersistEnv:
    prefix = sub_prefix("persist")
    await ensure_topics(kafka_bootstrap, prefix, PARTITIONS)
    common = CommonSettings(
        env=Environment.TEST,
        state_dir=state_dir,
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=prefix,
        topic_partitions=PARTITIONS,
    )
    return PersistEnv(common=common, prefix=prefix)


def sample(
    server_id: uuid.UUID,
    time: datetime,
    cpu: float,
    *,
    sent: int | None = None,
    recv: int | None = None,
    disk_percent: float | None = None,
) -> MetricSample:
    interfaces: tuple[InterfaceSample, ...] = ()
    if sent is not None and recv is not None:
        interfaces = (InterfaceSample(interface="eth0", bytes_sent=sent, bytes_recv=recv, packets_sent=7),)
    disks: tuple[DiskSample, ...] = ()
    if disk_percent is not None:
        used = int(disk_percent * 10_000)
        disks = (
            DiskSample(
                mount="/",
                total_bytes=1_000_000,
                used_bytes=used,
                free_bytes=1_000_000 - used,
                percent=disk_percent,
            ),
        )
    return MetricSample(
        server_id=server_id,
        time=time,
        received_at=time + timedelta(milliseconds=5),
        cpu_percent=cpu,
        memory_percent=50.0 + cpu / 4,
        memory_total_bytes=8_000_000_000,
        memory_used_bytes=4_000_000_000 + int(cpu),
        load1=cpu / 100,
        uptime_seconds=1000,
        cpu_cores=4,
        disks=disks,
        interfaces=interfaces,
    )


def log_record(server_id: uuid.UUID, time: datetime, message: str, ordinal: int = 0) -> LogRecord:
    return LogRecord(
        server_id=server_id,
        entry_id=log_entry_id(server_id, time, "syslog", message, ordinal),
        time=time,
        received_at=time,
        level="INFO",
        message=message,
        source="syslog",
    )


def event(
    server_id: uuid.UUID,
    kind: str,
    connection_id: uuid.UUID,
    time: datetime | None = None,
    *,
    superseded: bool = False,
) -> AgentEvent:
    return AgentEvent.model_validate(
        {
            "server_id": server_id,
            "event": kind,
            "time": time or utcnow(),
            "connection_id": connection_id,
            "superseded": superseded,
            "dialect": "seed",
        }
    )


def result(server_id: uuid.UUID, command_id: uuid.UUID, output: str) -> CommandResult:
    return CommandResult(
        command_id=command_id,
        server_id=server_id,
        success=True,
        output=output,
        exit_code=0,
        duration_ms=12,
        finished_at=utcnow(),
    )


Message = MetricSample | LogRecord | AgentEvent | CommandResult

_TOPIC_OF: dict[type, topics.TopicSpec] = {
    MetricSample: topics.METRICS,
    LogRecord: topics.LOGS,
    AgentEvent: topics.AGENT_EVENTS,
    CommandResult: topics.COMMAND_RESULTS,
}


async def produce(
    env: PersistEnv, messages: Sequence[Message], raw: Sequence[tuple[str, bytes]] = ()
) -> None:
    """Produce canonical messages keyed by server id (as ingest does), and raw values as given."""
    producer = AIOKafkaProducer(bootstrap_servers=env.common.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                env.topic(_TOPIC_OF[type(m)]), m.to_bytes(), key=topics.server_key(m.server_id)
            )
            for m in messages
        ]
        futures += [await producer.send(topic, value, key=b"garbage") for topic, value in raw]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(settings: ProcessorSettings) -> AsyncIterator[PersistenceService]:
    """A database pool and a persistence consumer, started and stopped as the app does."""
    database = Database(settings)
    await database.start()
    service = PersistenceService(settings, database)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await database.stop()


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail with `what` after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def scalar(dsn: str, sql: str, params: Sequence[Any] = ()) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
        return None if row is None else row[0]


async def count_metrics(dsn: str, server_ids: Sequence[uuid.UUID]) -> tuple[int, int]:
    """(rows, distinct natural keys) of the metrics of these servers."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*), count(DISTINCT (server_id, time)) FROM metrics WHERE server_id = ANY(%s)",
            (list(server_ids),),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


async def add_server(dsn: str, name: str = "web-1") -> tuple[uuid.UUID, uuid.UUID]:
    """A user and a server of theirs; returns (owner_id, server_id)."""
    owner, server = uuid.uuid4(), uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
            (owner, f"{owner.hex[:8]}@example.com", f"user-{owner.hex[:8]}"),
        )
        await conn.execute(
            "INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, %s)", (server, owner, name)
        )
    return owner, server
