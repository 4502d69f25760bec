"""A command's answer that Kafka did not confirm in time (issue 12, "acked means stored").

The agent gets a `retry` error instead of the ack; its resend must still find the command waiting,
be produced and acknowledged, and the command must still be answered (as failed) if the agent never
sends it again. Both dialects, with a fake producer whose deliveries the test confirms or lets
time out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import pytest

from ingest.errors import BrokerUnavailable
from ingest.metrics import IngestMetrics
from ingest.session import AgentSession
from schemas.canonical import COMMAND_RESULT, CommandRequest
from tests.unit.test_ingest_session import SERVER, FakeSocket, make_session

pytestmark = pytest.mark.timeout(30)

LEGACY_METRICS = {
    "type": "metrics",
    "data": {
        "server_id": "uuid",
        "timestamp": "2025-12-12T15:03:25+02:00",
        "cpu": {"usage_percent": 12.5, "cores": 1, "frequency_mhz": 2400},
        "memory": {"total_gb": 15.5, "used_gb": 6.2, "available_gb": 9.0, "usage_percent": 39.9},
        "disk": {"total_gb": 97.9, "used_gb": 41.3, "available_gb": 51.6, "usage_percent": 44.5},
        "network": {"bytes_sent": 1, "bytes_recv": 2, "packets_sent": 3, "packets_recv": 4},
        "containers": None,
        "processes": [],
    },
}
SEED_METRICS = {
    "type": "metrics",
    "seq": 1,
    "cpu_percent": 1,
    "memory_percent": 2,
    "timestamp": "2024-01-01T00:00:00Z",
}


class Delivery:
    """A delivery the test confirms (or fails) by hand; it may be confirmed after its wait gave up."""

    def __init__(self) -> None:
        self.confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self.confirmed)
        except TimeoutError as exc:
            raise BrokerUnavailable("not confirmed in time") from exc

    def on_confirmed(self, callback: Callable[[], None]) -> None:
        def done(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and future.exception() is None:
                callback()

        self.confirmed.add_done_callback(done)


class Producer:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.records: list[tuple[str, bytes, bytes]] = []
        self.changed = asyncio.Event()

    async def enqueue(self, records: list[tuple[str, bytes, bytes]], within: float) -> Delivery:
        self.records.extend(records)
        delivery = Delivery()
        self.deliveries.append(delivery)
        self.changed.set()
        return delivery

    def results(self) -> list[bytes]:
        return [value for topic, _, value in self.records if "command-results" in topic]

    async def wait_records(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.deliveries) < count:
                self.changed.clear()
                await self.changed.wait()


def shell_command(timeout: float = 30.0) -> CommandRequest:
    now = datetime.now(UTC)
    return CommandRequest(
        command_id=uuid.uuid4(),
        server_id=SERVER,
        action="shell",
        command="uptime",
        timeout_seconds=timeout,
        requested_at=now,
        deadline=now + timedelta(seconds=60),
    )


def answer(dialect: str, request: CommandRequest, seq: int = 2) -> dict[str, Any]:
    if dialect == "legacy":
        return {
            "type": "command_result",
            "data": {"output": " 10:00 up 2 days", "exit_code": 0},
            "request_id": str(request.command_id),
        }
    return {
        "type": "command_response",
        "seq": seq,
        "command_id": str(request.command_id),
        "output": " 10:00 up 2 days",
        "exit_code": 0,
        "duration_ms": 12,
    }


def count(metrics: IngestMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("fleetpulse_ingest_commands_total", {"outcome": outcome})
    return value or 0.0


class Agent:
    """A session with one command delivered, in the given dialect."""

    def __init__(self, dialect: str, **settings: Any) -> None:
        self.dialect = dialect
        self.producer = Producer()
        session, socket, metrics = make_session(cast(Any, self.producer), **settings)
        self.session: AgentSession = session
        self.socket: FakeSocket = socket
        self.metrics = metrics
        self.failed: list[tuple[CommandRequest, str]] = cast(Any, session.runtime).failed
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Agent:
        self.task = asyncio.create_task(self.session.run())
        self.socket.feed(LEGACY_METRICS if self.dialect == "legacy" else SEED_METRICS)
        await self.producer.wait_records(1)
        self.producer.deliveries[0].confirmed.set_result(None)
        await self.socket.wait_sent(1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.session.kick(1001, "test over")
        assert self.task is not None
        await self.task

    async def command(self, request: CommandRequest) -> None:
        before = len(self.socket.sent)
        self.session.deliver(request)
        await self.socket.wait_sent(before + 1)
        frame = self.socket.sent[-1]
        key = "request_id" if self.dialect == "legacy" else "command_id"
        assert frame[key] == str(request.command_id)

    async def reply(self, request: CommandRequest) -> Delivery:
        """Send the answer; returns the delivery of the result it produced."""
        before = len(self.producer.deliveries)
        self.socket.feed(answer(self.dialect, request))
        await self.producer.wait_records(before + 1)
        assert len(self.producer.deliveries) == before + 1
        return self.producer.deliveries[-1]

    async def next_sent(self) -> dict[str, Any]:
        before = len(self.socket.sent)
        await self.socket.wait_sent(before + 1)
        frame: dict[str, Any] = self.socket.sent[before]
        return frame


def retry_frame(dialect: str) -> dict[str, Any]:
    return {"type": "error", "code": "retry", "retry": True, "seq": None if dialect == "legacy" else 2}


@pytest.mark.parametrize("dialect", ["seed", "legacy"])
async def test_an_answer_kafka_did_not_confirm_is_stored_when_the_agent_resends_it(dialect: str) -> None:
    async with Agent(dialect, produce_timeout=0.3) as agent:
        request = shell_command()
        await agent.command(request)
        await agent.reply(request)  # never confirmed: its wait gives up after produce_timeout
        reply = await agent.next_sent()
        assert {k: reply.get(k) for k in ("type", "code", "retry", "seq")} == retry_frame(dialect)

        # The resend still finds its command waiting: it is produced (not ignored, not acked unstored).
        delivery = await agent.reply(request)
        assert count(agent.metrics, "unmatched_reply") == 0
        delivery.confirmed.set_result(None)
        if dialect == "seed":
            assert await agent.next_sent() == {"type": "ack", "seq": 2}
        first, resent = agent.producer.results()
        # The same answer, byte for byte: the results topic's consumers keep one row per command.
        assert first == resent
        result = COMMAND_RESULT.validate_json(resent)
        assert result.command_id == request.command_id and result.success
        assert result.output == " 10:00 up 2 days"

        # Stored: the command is done. No timeout result follows, and the next command is sent
        # (a legacy agent's one slot is free again).
        following = shell_command()
        await agent.command(following)
        await asyncio.sleep(0.5)
        assert agent.failed == []


@pytest.mark.parametrize("dialect", ["seed", "legacy"])
async def test_an_answer_never_resent_still_gets_the_commands_failure_result(dialect: str) -> None:
    async with Agent(dialect, produce_timeout=0.2, command_resend_grace=0.3) as agent:
        request = shell_command(timeout=0.5)
        await agent.command(request)
        await agent.reply(request)
        assert (await agent.next_sent())["code"] == "retry"
        async with asyncio.timeout(10):
            while not agent.failed:
                await asyncio.sleep(0.05)
        [(failed, error)] = agent.failed
        assert failed.command_id == request.command_id
        assert error == "the agent's answer could not be stored and was not sent again"
        # The agent is not running it any more (it answered): a legacy agent's slot is free.
        await agent.command(shell_command())


async def test_the_resend_grace_outlasts_a_timeout_that_passed_while_kafka_was_waited_for() -> None:
    async with Agent("seed", produce_timeout=0.6, command_resend_grace=5) as agent:
        request = shell_command(timeout=0.2)  # passes while the answer's delivery is awaited
        await agent.command(request)
        await agent.reply(request)
        assert (await agent.next_sent())["code"] == "retry"
        await asyncio.sleep(0.3)
        assert agent.failed == []  # the timeout waits for the resend, within the grace
        delivery = await agent.reply(request)
        delivery.confirmed.set_result(None)
        assert await agent.next_sent() == {"type": "ack", "seq": 2}
        await asyncio.sleep(0.3)
        assert agent.failed == []


async def test_a_timeout_during_the_delivery_waits_for_its_outcome() -> None:
    async with Agent("seed", produce_timeout=5) as agent:
        request = shell_command(timeout=0.2)
        await agent.command(request)
        delivery = await agent.reply(request)
        await asyncio.sleep(0.5)  # the command's timeout passes while Kafka has its answer
        assert agent.failed == []
        delivery.confirmed.set_result(None)
        assert await agent.next_sent() == {"type": "ack", "seq": 2}
        await asyncio.sleep(0.3)
        assert agent.failed == []
        assert len(agent.producer.results()) == 1


async def test_a_late_confirmation_counts_as_stored() -> None:
    async with Agent("seed", produce_timeout=0.2, command_resend_grace=0.5) as agent:
        request = shell_command(timeout=0.3)
        await agent.command(request)
        delivery = await agent.reply(request)
        assert (await agent.next_sent())["code"] == "retry"
        delivery.confirmed.set_result(None)  # Kafka had it after all, after the wait gave up
        await asyncio.sleep(1.0)
        assert agent.failed == []  # stored: no failure result overwrites the agent's answer
        # Its resend has nothing left to store: acknowledged, not produced again.
        agent.socket.feed(answer("seed", request))
        assert await agent.next_sent() == {"type": "ack", "seq": 2}
        assert len(agent.producer.results()) == 1


async def test_a_disconnect_hands_the_unconfirmed_answer_over_instead_of_failing_it() -> None:
    async with Agent("seed", produce_timeout=5) as agent:
        request = shell_command()
        waiting = shell_command()
        await agent.command(request)
        await agent.command(waiting)
        delivery = await agent.reply(request)
        left = agent.session.end("test over")
        by_id = {u.request.command_id: u for u in left}
        assert by_id[request.command_id].pending == (cast(Any, delivery),)
        assert by_id[request.command_id].error == "agent disconnected before its answer was stored"
        assert by_id[waiting.command_id].pending == ()
        assert by_id[waiting.command_id].error == "agent disconnected before answering"
        delivery.confirmed.set_result(None)


async def test_the_runtime_fails_a_handed_over_command_only_if_kafka_never_confirmed() -> None:
    from ingest.runtime import Runtime
    from ingest.settings import IngestSettings
    from schemas.settings import CommonSettings

    settings = IngestSettings(
        common=CommonSettings(key_pepper="p" * 40, jwt_secret="j" * 40), produce_timeout=0.2
    )
    runtime = Runtime(settings, IngestMetrics())
    sent: list[bytes] = []

    async def send(records: list[tuple[str, bytes, bytes]], within: float) -> None:
        sent.extend(value for _, _, value in records)

    await runtime.producer.stop()  # never started: the fake below sends instead
    runtime.producer = cast(Any, type("P", (), {"send": staticmethod(send)}))
    confirmed, lost = Delivery(), Delivery()
    confirmed.confirmed.set_result(None)
    stored: Any = confirmed
    kept, dropped = shell_command(), shell_command()
    runtime.fail_command(kept, "agent disconnected before its answer was stored", unless_stored=(stored,))
    runtime.fail_command(
        dropped, "agent disconnected before its answer was stored", unless_stored=(cast(Any, lost),)
    )
    async with asyncio.timeout(10):
        while runtime._publishes:
            await asyncio.sleep(0.05)
    [only] = [COMMAND_RESULT.validate_json(value) for value in sent]
    assert only.command_id == dropped.command_id and only.success is False
    assert orjson.loads(sent[0])["error"] == "agent disconnected before its answer was stored"


async def test_the_producers_delivery_reports_a_confirmation_after_its_wait_gave_up() -> None:
    from aiokafka.errors import KafkaTimeoutError

    from ingest.producer import Delivery as KafkaDelivery

    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    delivery = KafkaDelivery([first, second], 0.0, IngestMetrics())
    with pytest.raises(BrokerUnavailable):
        await delivery.wait(0.05)
    calls: list[str] = []
    delivery.on_confirmed(lambda: calls.append("confirmed"))
    first.set_result(None)
    await asyncio.sleep(0)
    assert calls == []  # one record of the frame is still unconfirmed
    second.set_result(None)
    await asyncio.sleep(0)
    assert calls == ["confirmed"]

    failing = KafkaDelivery([loop.create_future(), loop.create_future()], 0.0, IngestMetrics())
    failing.on_confirmed(lambda: calls.append("wrong"))
    failing._futures[0].set_exception(KafkaTimeoutError())
    failing._futures[0].exception()
    failing._futures[1].set_result(None)
    await asyncio.sleep(0)
    assert calls == ["confirmed"]  # a record failed: never reported as stored


def test_the_resend_grace_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from ingest.settings import IngestSettings
    from schemas.settings import CommonSettings

    common = CommonSettings(key_pepper="p" * 40, jwt_secret="j" * 40)
    monkeypatch.delenv("FLEETPULSE_INGEST_COMMAND_RESEND_GRACE", raising=False)
    monkeypatch.delenv("FLEETPULSE_INGEST_PRODUCE_TIMEOUT", raising=False)
    defaults = IngestSettings(common=common)
    # Longer than Kafka's own wait: an answer confirmed late is seen before the command is failed.
    assert defaults.command_resend_grace == 10.0 > defaults.produce_timeout
    monkeypatch.setenv("FLEETPULSE_INGEST_COMMAND_RESEND_GRACE", "2.5")
    assert IngestSettings(common=common).command_resend_grace == 2.5
    monkeypatch.setenv("FLEETPULSE_INGEST_COMMAND_RESEND_GRACE", "0")
    with pytest.raises(ValidationError):
        IngestSettings(common=common)
