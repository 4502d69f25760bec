"""Test harness for the ingest service: real uvicorn servers on loopback, keys in the real
database, and readers of what landed in the real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ingest.__main__ import uvicorn_config
from ingest.settings import IngestSettings
from schemas import apikeys
from tests.support.topics import read_from_beginning


@dataclass(frozen=True)
class Key:
    plaintext: str
    key_id: uuid.UUID
    server_id: uuid.UUID


async def create_key(
    database_url: str,
    pepper: str,
    *,
    server_id: uuid.UUID | None = None,
    is_active: bool = True,
    expired: bool = False,
) -> Key:
    """A user, a server (unless given) and an API key for it, straight into the database."""
    plaintext, parsed = apikeys.generate()
    key_id = uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        if server_id is None:
            user_id, server_id = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
                (user_id, f"{user_id}@example.test", str(user_id)),
            )
            await conn.execute(
                "INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, %s)", (server_id, user_id, "srv")
            )
        await conn.execute(
            "INSERT INTO api_keys (id, server_id, lookup_id, secret_hash, name, is_active, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() - interval '1 minute' END)",
            (
                key_id,
                server_id,
                parsed.lookup_id,
                apikeys.hash_secret(pepper.encode(), parsed.secret),
                "test key",
                is_active,
                expired,
            ),
        )
    return Key(plaintext, key_id, server_id)


class RunningIngest:
    """One real ingest process (uvicorn in this event loop) on a free loopback port."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        config = uvicorn_config(settings, host="127.0.0.1", port=0, log_level="warning")
        self.app: Any = config.app
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/agents/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RunningIngest:
        # _serve, not serve: the test's event loop keeps its own signal handling.
        self._task = asyncio.create_task(self.server._serve())
        async with asyncio.timeout(60):
            while not self.server.started:
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        sockets = self.server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            async with asyncio.timeout(60):
                await self._task

    def metric(self, name: str, **labels: str) -> float:
        value = self.app.state.ingest_metrics.registry.get_sample_value(name, labels or None)
        return float(value or 0.0)


class TopicReader:
    """Reads a topic from its beginning (no consumer group) and keeps every decoded record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[tuple[bytes | None, dict[str, Any]]] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        await read_from_beginning(self._consumer, self.topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, within: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` records match; returns them (fails after `within` seconds)."""
        async with asyncio.timeout(within):
            while True:
                found = [value for _, value in self.records if predicate(value)]
                if len(found) >= count:
                    return found
                batches = await self._consumer.getmany(timeout_ms=200)
                for batch in batches.values():
                    for record in batch:
                        self.records.append((record.key, orjson.loads(record.value or b"null")))

    async def drain(self, quiet: float = 1.0) -> None:
        """Read whatever is there now (for asserting that something did NOT arrive)."""
        batches = await self._consumer.getmany(timeout_ms=int(quiet * 1000))
        for batch in batches.values():
            for record in batch:
                self.records.append((record.key, orjson.loads(record.value or b"null")))


@contextlib.asynccontextmanager
async def kafka_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()
