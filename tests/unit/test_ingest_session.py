"""The socket session with fakes: acks wait for Kafka's confirmation, a failed produce is never a
silent drop, in-flight frames are bounded; and the failed-auth limiter."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from ingest.errors import BrokerUnavailable
from ingest.metrics import IngestMetrics
from ingest.ratelimit import FailedAuthLimiter
from ingest.runtime import Runtime, TopicNames
from ingest.session import AgentSession
from ingest.settings import IngestSettings
from schemas.settings import CommonSettings

pytestmark = pytest.mark.timeout(30)
SERVER = uuid.UUID("00000000-0000-4000-8000-000000000001")


class FakeSocket:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.closed: int | None = None

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(orjson.loads(message["text"]))
        self.changed.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code

    def feed(self, frame: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": orjson.dumps(frame).decode()})

    async def wait_sent(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()


class FakeDelivery:
    def __init__(self) -> None:
        self.confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                await self.confirmed
        except TimeoutError as exc:
            raise BrokerUnavailable("not confirmed in time") from exc


class FakeProducer:
    def __init__(self, refuse: bool = False) -> None:
        self.deliveries: list[FakeDelivery] = []
        self.records: list[tuple[str, bytes, bytes]] = []
        self.refuse = refuse
        self.enqueued = asyncio.Event()

    async def enqueue(self, records: list[tuple[str, bytes, bytes]], within: float) -> FakeDelivery:
        if self.refuse:
            raise BrokerUnavailable("broker down")
        self.records.extend(records)
        delivery = FakeDelivery()
        self.deliveries.append(delivery)
        self.enqueued.set()
        return delivery


def metrics_frame(seq: int) -> dict[str, Any]:
    return {
        "type": "metrics",
        "seq": seq,
        "cpu_percent": 1,
        "memory_percent": 2,
        "timestamp": "2024-01-01T00:00:00Z",
    }


def make_session(producer: FakeProducer, **overrides: Any) -> tuple[AgentSession, FakeSocket, IngestMetrics]:
    common = CommonSettings(key_pepper="p" * 40, jwt_secret="j" * 40)
    settings = IngestSettings(common=common, **overrides)
    metrics = IngestMetrics()
    runtime = SimpleNamespace(
        settings=settings,
        metrics=metrics,
        producer=producer,
        topic_names=TopicNames.with_prefix("unit."),
        failed=[],
    )
    runtime.fail_command = lambda request, error: runtime.failed.append((request, error))
    socket = FakeSocket()
    session = AgentSession(cast(Any, socket), cast(Runtime, runtime), uuid.uuid4(), SERVER, "127.0.0.1")
    return session, socket, metrics


async def test_the_ack_waits_for_kafka_and_acks_keep_frame_order() -> None:
    producer = FakeProducer()
    session, socket, _ = make_session(producer, produce_timeout=10)
    task = asyncio.create_task(session.run())
    for seq in (1, 2, 3):
        socket.feed(metrics_frame(seq))
    async with asyncio.timeout(10):
        while len(producer.deliveries) < 3:
            producer.enqueued.clear()
            await producer.enqueued.wait()
    # Produced (pipelined: all three handed over) but nothing confirmed: no ack at all.
    socket.feed({"type": "ping"})
    await asyncio.sleep(0.2)
    assert socket.sent == []  # even the pong waits behind the unconfirmed frames: replies stay in order
    producer.deliveries[1].confirmed.set_result(None)
    await asyncio.sleep(0.1)
    assert socket.sent == []  # frame 2 is confirmed but frame 1 is not: acks never overtake
    producer.deliveries[0].confirmed.set_result(None)
    await socket.wait_sent(2)
    assert socket.sent == [{"type": "ack", "seq": 1}, {"type": "ack", "seq": 2}]
    producer.deliveries[2].confirmed.set_result(None)
    await socket.wait_sent(4)
    assert socket.sent[2:] == [{"type": "ack", "seq": 3}, {"type": "pong"}]
    session.kick(1001, "test over")
    await task


async def test_a_frame_kafka_does_not_confirm_gets_a_retry_error_and_no_ack() -> None:
    producer = FakeProducer()
    session, socket, metrics = make_session(producer, produce_timeout=0.2)
    task = asyncio.create_task(session.run())
    socket.feed(metrics_frame(7))
    await socket.wait_sent(1)
    [reply] = socket.sent
    assert (
        reply["type"] == "error" and reply["code"] == "retry" and reply["seq"] == 7 and reply["retry"] is True
    )
    assert metrics.registry.get_sample_value("fleetpulse_ingest_acks_total", {"dialect": "seed"}) is None
    assert (
        metrics.registry.get_sample_value(
            "fleetpulse_ingest_refusals_total", {"reason": "broker_unavailable"}
        )
        == 1
    )
    session.kick(1001, "test over")
    await task


async def test_a_broker_that_refuses_at_once_is_reported_too() -> None:
    session, socket, _ = make_session(FakeProducer(refuse=True))
    task = asyncio.create_task(session.run())
    socket.feed(metrics_frame(8))
    await socket.wait_sent(1)
    assert socket.sent[0]["code"] == "retry" and socket.sent[0]["seq"] == 8
    session.kick(1001, "test over")
    await task


async def test_in_flight_frames_are_bounded_per_socket() -> None:
    producer = FakeProducer()
    session, socket, _ = make_session(producer, max_in_flight=2, produce_timeout=10)
    task = asyncio.create_task(session.run())
    for seq in range(1, 6):
        socket.feed(metrics_frame(seq))
    await asyncio.sleep(0.3)
    assert len(producer.deliveries) == 2  # the receiver stopped reading at the bound
    producer.deliveries[0].confirmed.set_result(None)
    await socket.wait_sent(1)
    async with asyncio.timeout(10):
        while len(producer.deliveries) < 3:
            producer.enqueued.clear()
            await producer.enqueued.wait()
    await asyncio.sleep(0.1)
    assert len(producer.deliveries) == 3
    session.kick(1001, "test over")
    await task


def test_failed_auth_limiter_blocks_then_forgets() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(limit=3, window=10.0, max_tracked=2, clock=lambda: now[0])
    for _ in range(3):
        assert not limiter.blocked("a")
        limiter.failed("a")
    assert limiter.blocked("a") and not limiter.blocked("b")
    now[0] = 10.5
    assert not limiter.blocked("a")
    # Memory is bounded: the least recently failing address is forgotten first.
    for address in ("x", "y", "z"):
        for _ in range(3):
            limiter.failed(address)
    assert not limiter.blocked("x") and limiter.blocked("y") and limiter.blocked("z")


async def test_the_cached_partition_is_kafkas_default_partition() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from ingest.producer import Producer

    producer = Producer("127.0.0.1:1", linger_ms=0, request_timeout_ms=1000, metrics=IngestMetrics())
    producer._partition_counts["t"] = 12
    partitions = list(range(12))
    for n in range(200):
        key = str(uuid.UUID(int=n * 7919)).encode()
        assert producer._partition("t", key) == DefaultPartitioner()(key, partitions, partitions)
    assert producer._partition("unknown-topic", b"k") is None
    await producer.stop()
    await producer.stop()  # a double stop is safe


async def test_commands_wait_for_the_dialect_and_the_queue_is_bounded() -> None:
    from datetime import UTC, datetime, timedelta

    from schemas.canonical import CommandRequest

    session, socket, _ = make_session(FakeProducer(), command_queue=2)
    runtime = cast(Any, session.runtime)
    now = datetime.now(UTC)
    requests = [
        CommandRequest(
            command_id=uuid.uuid4(),
            server_id=SERVER,
            action="shell",
            command=f"echo {n}",
            requested_at=now,
            deadline=now + timedelta(seconds=30),
        )
        for n in range(3)
    ]
    for request in requests:
        session.deliver(request)
    # The dialect is unknown: two are held, the third is over the bound and answered as failed.
    assert [(r.command_id, e) for r, e in runtime.failed] == [
        (requests[2].command_id, "too many commands waiting for this agent")
    ]
    assert socket.sent == []
    left = session.end("test over")
    assert [u.request.command_id for u in left] == [r.command_id for r in requests[:2]]
    assert {(u.error, u.pending) for u in left} == {("agent disconnected before answering", ())}
