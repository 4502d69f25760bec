"""The agent's connection against a small local WebSocket server (a fake ingest, unit tier):
acks empty the spool, a lost connection replays unacked frames in order with their original
timestamps, replay is paced behind live data, a refused key stops at once, commands answer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from fleetpulse_agent.commands import CommandPolicy
from fleetpulse_agent.connection import AgentConnection, ConnectionConfig
from fleetpulse_agent.errors import AuthRejected, Superseded
from fleetpulse_agent.runner import MAX_LOG_BATCH_BYTES, log_batches, spool_metrics
from fleetpulse_agent.spool import MemorySpool
from fleetpulse_agent.wire import LogEntry, MetricsFrame
from schemas.agent_wire import (
    AGENT_FRAME,
    CLOSE_POLICY,
    CLOSE_SUPERSEDED,
    INVALID_KEY,
    AckFrame,
    AuthFrame,
    AuthSuccessFrame,
    CommandFrame,
    CommandResponseFrame,
    ErrorFrame,
    PingFrame,
    PongFrame,
    SeedMetricsFrame,
)

GOOD_KEY = "fpk_good"
SERVER_ID = uuid.uuid4()


@dataclass
class FakeIngest:
    """Acks every metrics frame unless told otherwise; records what arrived, in order."""

    received: list[SeedMetricsFrame] = field(default_factory=list)
    replies: list[object] = field(default_factory=list)
    connects: int = 0
    # Drop the connection (without acking) after this many frames, on the first connection only.
    crash_after: int | None = None
    ack: bool = True
    retry_once: set[int] = field(default_factory=set)
    on_auth: Callable[[ServerConnection], object] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, ws: ServerConnection) -> None:
        auth = AGENT_FRAME.validate_json(await ws.recv())
        if not isinstance(auth, AuthFrame) or auth.api_key != GOOD_KEY:
            await ws.send(ErrorFrame(message=INVALID_KEY, code="invalid_key").to_bytes().decode())
            await ws.close(CLOSE_POLICY, "invalid api key")
            return
        self.connects += 1
        await ws.send(AuthSuccessFrame(server_id=SERVER_ID).to_bytes().decode())
        if self.on_auth is not None:
            await ws.send(str(self.on_auth(ws)))
        n = 0
        async for raw in ws:
            frame = AGENT_FRAME.validate_json(raw)
            if isinstance(frame, PingFrame):
                await ws.send(PongFrame().to_bytes().decode())
            elif isinstance(frame, SeedMetricsFrame):
                assert frame.seq is not None
                self.received.append(frame)
                self.arrived.set()
                n += 1
                if self.crash_after is not None and n > self.crash_after and self.connects == 1:
                    await ws.close(1011, "crash")
                    return
                if frame.seq in self.retry_once:
                    self.retry_once.discard(frame.seq)
                    err = ErrorFrame(message="retry", code="retry", seq=frame.seq, retry=True)
                    await ws.send(err.to_bytes().decode())
                elif self.ack:
                    await ws.send(AckFrame(seq=frame.seq).to_bytes().decode())
            else:
                self.replies.append(frame)
                self.arrived.set()


@contextlib.asynccontextmanager
async def fake_ingest(fake: FakeIngest) -> AsyncIterator[str]:
    server: Server = await serve(fake.handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/api/v1/agents/ws"
    finally:
        server.close()
        await server.wait_closed()


def config(url: str, key: str = GOOD_KEY, **kw: float) -> ConnectionConfig:
    base: dict[str, float] = {"backoff_initial": 0.05, "backoff_max": 0.2, "ack_timeout": 5.0}
    base.update(kw)
    return ConnectionConfig(url=url, api_key=key, **base)  # type: ignore[arg-type]


def sample(t: datetime, cpu: float = 10.0) -> MetricsFrame:
    return MetricsFrame(timestamp=t, cpu_percent=cpu, memory_percent=50.0)


async def until(cond: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(conn: AgentConnection) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run_forever(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_acked_frames_leave_the_spool() -> None:
    fake = FakeIngest()
    spool = MemorySpool(100)
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url), spool)
        async with running(conn):
            await until(lambda: conn.stats.connected, "connect")
            for i in range(5):
                await spool_metrics(spool, conn, sample(T0 + timedelta(seconds=5 * i)))
            await until(lambda: conn.stats.acked == 5, "5 acks")
    assert await spool.size() == 0
    assert [f.seq for f in fake.received] == [1, 2, 3, 4, 5]


async def test_a_lost_connection_replays_unacked_frames_in_order_with_original_timestamps() -> None:
    fake = FakeIngest(crash_after=2)  # frames 3.. of the first connection are never acked
    spool = MemorySpool(100)
    times = [T0 + timedelta(seconds=5 * i) for i in range(10)]
    for t in times:  # sampled while the server was away
        await spool_metrics(spool, AgentConnection(config("ws://unused"), spool), sample(t))
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url, replay_rate=200), spool)
        async with running(conn):
            await until(lambda: conn.stats.acked == 10 and fake.connects == 2, "all acked after a reconnect")
    assert await spool.size() == 0
    # Each seq arrived with the timestamp it was sampled at; replays keep order within a connection.
    assert {f.seq: f.timestamp for f in fake.received} == {i + 1: t for i, t in enumerate(times)}
    second = [f.seq or 0 for f in fake.received[3:]]
    assert second == sorted(second) and set(second) >= {3, 4, 5, 6, 7, 8, 9, 10}


async def test_replay_is_paced_and_live_data_goes_first() -> None:
    fake = FakeIngest()
    spool = MemorySpool(100)
    for i in range(30):
        await spool_metrics(
            spool, AgentConnection(config("ws://unused"), spool), sample(T0 + timedelta(seconds=i))
        )
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url, replay_rate=5), spool)
        async with running(conn):
            await until(lambda: len(fake.received) >= 1, "the replay to start")
            live = await spool_metrics(spool, conn, sample(datetime.now(UTC), cpu=99.0))
            await until(lambda: conn.stats.acked == 31, "backlog and live acked", within=60)
    order = [f.seq for f in fake.received]
    # The live frame did not wait for the 30-frame backlog (paced at 5/s) to finish.
    assert order.index(live) < order.index(30)
    assert [s for s in order if s != live] == list(range(1, 31))


async def test_a_refused_key_stops_at_once_and_says_why() -> None:
    fake = FakeIngest()
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url, key="fpk_wrong"), MemorySpool(10))
        with pytest.raises(AuthRejected, match="refused the API key: Invalid or inactive API key"):
            await asyncio.wait_for(conn.run_forever(asyncio.Event()), 10)
    assert conn.stats.connects == 0


async def test_a_server_that_stops_acking_is_dropped_and_reconnected() -> None:
    fake = FakeIngest(ack=False)
    spool = MemorySpool(100)
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url, ack_timeout=0.5), spool)
        async with running(conn):
            await until(lambda: conn.stats.connected, "connect")
            await spool_metrics(spool, conn, sample(T0))
            await until(lambda: fake.connects >= 2, "a reconnect after the ack deadline")
            fake.ack = True
            await until(lambda: conn.stats.acked == 1, "the frame acked on a later connection")
    assert "no ack for seq 1" in (conn.stats.last_error or "")
    assert await spool.size() == 0


async def test_a_retry_error_sends_the_frame_again() -> None:
    fake = FakeIngest(retry_once={1})
    spool = MemorySpool(100)
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url), spool)
        async with running(conn):
            await until(lambda: conn.stats.connected, "connect")
            await spool_metrics(spool, conn, sample(T0))
            await until(lambda: conn.stats.acked == 1, "ack after the resend")
    assert [f.seq for f in fake.received] == [1, 1]
    assert conn.stats.resent == 1 and fake.connects == 1


@pytest.mark.parametrize(
    ("enabled", "command", "exit_code", "output"),
    [(False, "echo hi", 126, ""), (True, "echo hi", 0, "hi\n"), (True, "id", 126, "")],
)
async def test_commands_answer_with_duration(
    enabled: bool, command: str, exit_code: int, output: str
) -> None:
    command_id = uuid.uuid4()
    fake = FakeIngest(
        on_auth=lambda ws: CommandFrame(command_id=command_id, command=command).to_bytes().decode()
    )
    policy = CommandPolicy(
        enabled=enabled, allowlist=(r"echo [a-z]+",), timeout_seconds=5, max_output_bytes=1000
    )
    async with fake_ingest(fake) as url:
        conn = AgentConnection(config(url), MemorySpool(10), policy=policy)
        async with running(conn):
            await until(lambda: bool(fake.replies), "the command's answer")
    reply = fake.replies[0]
    assert isinstance(reply, CommandResponseFrame)
    assert reply.command_id == command_id and reply.exit_code == exit_code and reply.output == output
    assert reply.duration_ms is not None
    assert (reply.error is None) == (exit_code == 0)


async def test_superseded_stops_this_agent_instead_of_fighting() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(AuthSuccessFrame(server_id=SERVER_ID).to_bytes().decode())
        await ws.close(CLOSE_SUPERSEDED, "superseded")

    server: Server = await serve(handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        conn = AgentConnection(config(f"ws://127.0.0.1:{port}/api/v1/agents/ws"), MemorySpool(10))
        with pytest.raises(Superseded, match="another agent connected"):
            await asyncio.wait_for(conn.run_forever(asyncio.Event()), 10)
        assert conn.stats.connects == 1
    finally:
        server.close()
        await server.wait_closed()


def test_log_batches_stay_under_the_frame_limit() -> None:
    entries = [LogEntry(level="INFO", message="x" * 4000, timestamp=T0) for _ in range(100)]
    frames = log_batches(entries)
    assert sum(len(f.entries) for f in frames) == 100
    assert all(len(f.to_bytes()) < MAX_LOG_BATCH_BYTES * 1.1 for f in frames)
    assert len(frames) > 1


async def test_never_more_than_max_in_flight_unacknowledged() -> None:
    outstanding: list[int] = []
    overflow: list[object] = []
    peak = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal peak
        await ws.recv()
        await ws.send(AuthSuccessFrame(server_id=SERVER_ID).to_bytes().decode())
        async for raw in ws:
            frame = AGENT_FRAME.validate_json(raw)
            if isinstance(frame, SeedMetricsFrame) and frame.seq is not None:
                outstanding.append(frame.seq)
                peak = max(peak, len(outstanding))
                if len(outstanding) == 3:
                    # A slow server: with 3 unacknowledged, the agent must send nothing more.
                    try:
                        early = await asyncio.wait_for(ws.recv(), 0.3)
                    except TimeoutError:
                        pass
                    else:
                        overflow.append(early)
                        return
                    for seq in outstanding:
                        await ws.send(AckFrame(seq=seq).to_bytes().decode())
                    outstanding.clear()

    spool = MemorySpool(100)
    for i in range(12):
        await spool_metrics(
            spool, AgentConnection(config("ws://unused"), spool), sample(T0 + timedelta(seconds=i))
        )
    server: Server = await serve(handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        conn = AgentConnection(config(f"ws://127.0.0.1:{port}", replay_rate=1000, max_in_flight=3), spool)
        async with running(conn):
            await until(lambda: conn.stats.acked == 12, "12 acks")
    finally:
        server.close()
        await server.wait_closed()
    assert peak == 3 and overflow == []
    assert await spool.size() == 0
