"""What the live-socket tests share: an API served by uvicorn in this process, users and servers
in the session database, tokens, a publisher of numbered samples, a persister that lags behind
Kafka on purpose, and a socket client that records every frame.

The persister writes rows and `persisted_offsets` in one transaction, as the persistence processor
does (docs/schema.md), so the seam the sockets rely on is exercised on the real database.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import psycopg
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.db.pool import close_pool, open_pool
from api.live.routes import LIVE_KEY
from api.live.routes import router as live_router
from api.live.service import LiveService
from api.live.settings import LiveSettings
from api.settings import ApiSettings
from schemas import tokens, topics
from schemas.canonical import (
    LOG_RECORD,
    METRIC_SAMPLE,
    DiskSample,
    InterfaceSample,
    LogRecord,
    MetricSample,
    log_entry_id,
)
from schemas.settings import CommonSettings

T0 = datetime(2000, 1, 1, tzinfo=UTC)


def live_only_app(settings: ApiSettings) -> FastAPI:
    """The live router with the same lifespan resources the API gives it (a pool, the service)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(settings.common.database_url, min_size=1, max_size=10, command_timeout=30)
        try:
            async with LiveService(
                settings.live, settings.common.kafka_bootstrap, settings.common.topic_prefix
            ) as service:
                app.state.resources = SimpleNamespace(
                    settings=settings, pool=pool, extras={LIVE_KEY: service}
                )
                yield
        finally:
            await close_pool(pool)

    app = FastAPI(lifespan=lifespan)
    app.state.settings = settings
    app.include_router(live_router, prefix="/api/v1")
    return app


class ApiServer:
    """The API (`api.app.create_app`, or only its live part) served on a free port of this process."""

    def __init__(
        self, common: CommonSettings, live: LiveSettings, *, full_app: bool = True, **api: Any
    ) -> None:
        self.settings = ApiSettings(common=common, live=live, **api)
        self.app = create_app(self.settings) if full_app else live_only_app(self.settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            ws="websockets-sansio",
            ws_max_size=1 << 20,
            ws_ping_interval=20.0,
            ws_ping_timeout=120.0,
            lifespan="on",
            log_level="warning",
            backlog=4096,
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def __aenter__(self) -> ApiServer:
        self._task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(60):
            while not self.server.started:
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("the API server stopped during start")
                await asyncio.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(30):
                    await self._task

    def url(self, kind: str, server_id: uuid.UUID | str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws/{kind}/{server_id}"

    def token(self, user_id: uuid.UUID, lifetime: timedelta = timedelta(minutes=15), **kw: Any) -> str:
        secret = self.settings.common.jwt_secret.get_secret_value()
        token, _ = tokens.encode(secret, user_id, "access", lifetime, **kw)
        return token

    @property
    def live(self) -> Any:
        return self.app.state.resources.extras[LIVE_KEY]


async def add_user(db: psycopg.AsyncConnection[Any]) -> uuid.UUID:
    uid = uuid.uuid4()
    await db.execute(
        "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
        (uid, f"{uid.hex}@example.com", uid.hex),
    )
    return uid


async def add_server(
    db: psycopg.AsyncConnection[Any], owner: uuid.UUID, *, partition: int | None = None, partitions: int = 4
) -> uuid.UUID:
    """A server owned by `owner`; with `partition`, one whose key lands in that partition."""
    while True:
        sid = uuid.uuid4()
        if partition is None or topics.partition_for_key(topics.server_key(sid), partitions) == partition:
            break
    await db.execute(
        "INSERT INTO servers (id, owner_id, name) VALUES (%s, %s, %s)", (sid, owner, sid.hex[:8])
    )
    return sid


def sample(server_id: uuid.UUID, n: int, *, base: datetime | None = None, disks: int = 1) -> MetricSample:
    """Sample number `n`: its time is `base + n ms`, so the number survives the database."""
    time = (base or recent_base()) + timedelta(milliseconds=n)
    mounts = ["/"] + [f"/mnt/volume-{i:03d}" for i in range(1, disks)]
    return MetricSample(
        server_id=server_id,
        time=time,
        received_at=time,
        seq=n,
        cpu_percent=float(n % 100),
        memory_percent=50.0,
        disks=tuple(
            DiskSample(mount=m, total_bytes=100, used_bytes=40, free_bytes=60, percent=40.0) for m in mounts
        ),
        interfaces=(InterfaceSample(interface="eth0", bytes_sent=1000 * n, bytes_recv=2000 * n),),
    )


_BASE: list[datetime] = []


def recent_base() -> datetime:
    """One base instant per test session, a minute ago at whole milliseconds."""
    if not _BASE:
        now = datetime.now(UTC) - timedelta(minutes=1)
        _BASE.append(now.replace(microsecond=(now.microsecond // 1000) * 1000))
    return _BASE[0]


def number_of(frame: dict[str, Any], base: datetime | None = None) -> int:
    ts = datetime.fromisoformat(frame["data"]["timestamp"])
    return round((ts - (base or recent_base())) / timedelta(milliseconds=1))


def log_record(server_id: uuid.UUID, n: int, pad: int = 0) -> LogRecord:
    time = recent_base() + timedelta(milliseconds=n)
    message = f"line {n}" + " " * pad
    return LogRecord(
        server_id=server_id,
        entry_id=log_entry_id(server_id, time, "app", message, 0),
        time=time,
        received_at=time,
        level="INFO",
        message=message,
        source="app",
        seq=n,
    )


class Publisher:
    """An idempotent producer keyed by server id, as ingest publishes."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def metric(self, s: MetricSample) -> tuple[int, int]:
        md = await self.producer.send_and_wait(
            topics.METRICS.name(self.prefix), s.to_bytes(), key=topics.server_key(s.server_id)
        )
        return md.partition, md.offset

    async def log(self, r: LogRecord) -> tuple[int, int]:
        md = await self.producer.send_and_wait(
            topics.LOGS.name(self.prefix), r.to_bytes(), key=topics.server_key(r.server_id)
        )
        return md.partition, md.offset

    async def many(self, items: Sequence[MetricSample | LogRecord]) -> list[tuple[int, int]]:
        """Publish without waiting for each acknowledgement (order per key is kept)."""
        futures = []
        for item in items:
            topic = topics.METRICS if isinstance(item, MetricSample) else topics.LOGS
            futures.append(
                await self.producer.send(
                    topic.name(self.prefix), item.to_bytes(), key=topics.server_key(item.server_id)
                )
            )
        return [(md.partition, md.offset) for md in await asyncio.gather(*futures)]

    async def raw(self, topic: str, value: bytes, key: bytes) -> tuple[int, int]:
        md = await self.producer.send_and_wait(topic, value, key=key)
        return md.partition, md.offset


@dataclass
class Persister:
    """A stand-in for the persistence processor: rows and `persisted_offsets` in one transaction,
    `lag` messages behind the end of each partition (so history and Kafka both feed a socket)."""

    bootstrap: str
    database_url: str
    topic: str
    partitions: int
    lag: int = 0
    batch: int = 50
    persisted: dict[int, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _stop: bool = False

    async def __aenter__(self) -> Persister:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        if self._task is not None:
            async with asyncio.timeout(30):
                await self._task

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        conn = await psycopg.AsyncConnection.connect(self.database_url)
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            # Resume after what is already persisted, as the processor resumes from its commits.
            cur = await conn.execute(
                "SELECT partition, last_offset FROM persisted_offsets WHERE topic = %s", (self.topic,)
            )
            done: dict[int, int] = {int(p): int(o) for p, o in await cur.fetchall()}
            await conn.commit()
            for tp in tps:
                consumer.seek(tp, int(done.get(tp.partition, -1)) + 1)
            pending: dict[int, list[Any]] = {p: [] for p in range(self.partitions)}
            while not self._stop:
                got = await consumer.getmany(timeout_ms=100, max_records=500)
                for tp, records in got.items():
                    pending[tp.partition].extend(records)
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    limit = ends[tp] - self.lag
                    ready = [r for r in pending[tp.partition] if r.offset < limit][: self.batch]
                    if not ready:
                        continue
                    del pending[tp.partition][: len(ready)]
                    await self._write(conn, tp.partition, ready)
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
            await consumer.stop()

    async def _write(self, conn: psycopg.AsyncConnection[Any], partition: int, records: list[Any]) -> None:
        metrics: list[Any] = []
        disks: list[Any] = []
        ifaces: list[Any] = []
        logs: list[Any] = []
        for r in records:
            if self.topic.endswith(topics.METRICS.base):
                s = METRIC_SAMPLE.validate_json(r.value)
                metrics.append((s.server_id, s.time, s.cpu_percent, s.memory_percent, s.received_at))
                disks.extend(
                    (s.server_id, s.time, d.mount, d.total_bytes, d.used_bytes, d.free_bytes, d.percent)
                    for d in s.disks
                )
                ifaces.extend(
                    (s.server_id, s.time, i.interface, i.bytes_sent, i.bytes_recv) for i in s.interfaces
                )
            else:
                lr = LOG_RECORD.validate_json(r.value)
                logs.append(
                    (lr.server_id, lr.time, lr.entry_id, lr.level, lr.source, lr.message, lr.received_at)
                )
        async with conn.transaction():
            cur = conn.cursor()
            if metrics:
                await cur.executemany(
                    "INSERT INTO metrics (server_id, time, cpu_percent, memory_percent, received_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    metrics,
                )
            if disks:
                await cur.executemany(
                    "INSERT INTO metric_disks VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    disks,
                )
            if ifaces:
                await cur.executemany(
                    "INSERT INTO metric_interfaces (server_id, time, interface, bytes_sent, bytes_recv)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    ifaces,
                )
            if logs:
                await cur.executemany(
                    "INSERT INTO logs (server_id, time, entry_id, level, source, message, received_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    logs,
                )
            last = records[-1].offset
            await conn.execute(
                "INSERT INTO persisted_offsets (topic, partition, last_offset) VALUES (%s, %s, %s)"
                " ON CONFLICT (topic, partition) DO UPDATE"
                " SET last_offset = GREATEST(persisted_offsets.last_offset, EXCLUDED.last_offset)",
                (self.topic, partition, last),
            )
        self.persisted[partition] = last

    async def wait_persisted(self, partition: int, offset: int, within: float = 60) -> None:
        async with asyncio.timeout(within):
            while self.persisted.get(partition, -1) < offset:
                await asyncio.sleep(0.05)


async def wait_persisted_offset(
    db: psycopg.AsyncConnection[Any], topic: str, partition: int, offset: int, within: float = 90
) -> None:
    """Until `persisted_offsets` says `offset` of the partition is in the database."""
    sql = "SELECT last_offset FROM persisted_offsets WHERE topic = %s AND partition = %s"
    async with asyncio.timeout(within):
        while True:
            row = await (await db.execute(sql, (topic, partition))).fetchone()
            if row is not None and int(row[0]) >= offset:
                return
            await asyncio.sleep(0.1)


class Client:
    """A browser socket: authenticates, then records every frame it receives."""

    def __init__(self, url: str, auth: dict[str, Any], **connect_kw: Any) -> None:
        self.url = url
        self.auth = auth
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.ws: ClientConnection | None = None
        self._connect_kw = connect_kw

    async def __aenter__(self) -> Client:
        # No client keepalive: on a busy test machine a late pong would close sockets the test
        # is counting (the server keeps its own ping).
        kw = {"ping_interval": None, **self._connect_kw}
        self.ws = await connect(self.url, open_timeout=60, max_size=1 << 22, **kw)
        await self.ws.send(orjson.dumps(self.auth).decode())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def next(self, within: float = 30) -> dict[str, Any]:
        assert self.ws is not None
        async with asyncio.timeout(within):
            text = await self.ws.recv()
        frame: dict[str, Any] = orjson.loads(text)
        self.frames.append(frame)
        return frame

    async def until(self, done: Callable[[dict[str, Any]], bool], within: float = 60) -> dict[str, Any]:
        """Read frames until one satisfies `done` (it is returned); all are kept in `frames`."""
        async with asyncio.timeout(within):
            while True:
                frame = await self.next(within)
                if done(frame):
                    return frame

    async def closed(self, within: float = 30) -> int | None:
        """Read until the server closes; the close code."""
        assert self.ws is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    await self.next(within)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
        return self.close_code

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(frame).decode())


@contextlib.asynccontextmanager
async def client(url: str, auth: dict[str, Any], **kw: Any) -> AsyncIterator[Client]:
    async with Client(url, auth, **kw) as c:
        yield c


class StalledClient:
    """A socket that authenticates and then never reads (until told to): a tiny receive buffer,
    so the server's writes back up as they would for a frozen browser tab."""

    def __init__(self, port: int, path: str, auth: dict[str, Any]) -> None:
        self.port, self.path, self.auth = port, path, auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> StalledClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.writer.write(_masked_text(orjson.dumps(self.auth)))
        await self.writer.drain()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()

    async def frames(self, within: float = 60) -> AsyncIterator[tuple[int, bytes]]:
        """Read now: (opcode, payload) of each frame, until the connection ends."""
        assert self.reader is not None
        async with asyncio.timeout(within):
            while True:
                try:
                    head = await self.reader.readexactly(2)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                opcode, length = head[0] & 0x0F, head[1] & 0x7F
                if length == 126:
                    length = int.from_bytes(await self.reader.readexactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(await self.reader.readexactly(8), "big")
                payload = await self.reader.readexactly(length)
                yield opcode, payload
                if opcode == 0x8:
                    return


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
