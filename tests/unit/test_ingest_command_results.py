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


@pytest.mark.xfail(strict=True, reason="issue 12: the command is popped before its answer is stored")
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


@pytest.mark.xfail(strict=True, reason="issue 12: the command is popped before its answer is stored")
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


@pytest.mark.xfail(strict=True, reason="issue 12: the command is popped before its answer is stored")
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
