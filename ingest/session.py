"""One authenticated agent socket: a receiver, a sender and the commands in flight.

The receiver decodes each frame, hands its records to the producer (no round trip per frame) and
queues a `_Pending` for the sender; the sender sends outbound frames in order and, for a pending
frame, waits for Kafka's confirmation before sending its ack. So acks go out in the order the
frames came in, only for durable frames, and at most `max_in_flight` frames per socket are
unconfirmed at any time (the receiver stops reading when that many are pending: TCP backpressure).

Whichever of the receiver, the sender or an outside `kick` (newer socket, revoked key) finishes
first ends the session; cleanup (failing its commands, the disconnect event) runs in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import Counter
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from schemas import agent_wire as wire
from schemas import topics
from schemas.canonical import CommandRequest, CommandResult, utcnow

from .errors import BrokerUnavailable
from .producer import Delivery

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)

Dialect = Literal["seed", "legacy", "unknown"]


@dataclass(frozen=True, slots=True)
class CloseReason:
    code: int
    reason: str
    superseded: bool = False
    flush: bool = True  # send what is queued first (an error frame before the close)


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    ack: bytes | None
    seq: int | None
    command_id: uuid.UUID | None = None  # the frame is this command's answer


@dataclass(slots=True)
class _Active:
    """A command sent to the agent and not decided yet.

    It stays here until its answer is confirmed by Kafka (or it is answered as failed), not just
    until the agent answers: an answer Kafka does not confirm gets a `retry` error, and the
    agent's resend must still find its command."""

    request: CommandRequest
    handle: asyncio.TimerHandle
    expires_at: float  # loop time of the command's timeout
    timed_out: bool = False  # answered as failed; a legacy agent may still be running it
    answered_at: datetime | None = None  # the agent's first answer: every copy of its result says so
    storing: list[Delivery] = field(default_factory=list)  # its answer's deliveries, not yet decided
    given_up: list[Delivery] = field(default_factory=list)  # not confirmed in time (may still be, late)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A command left undecided when its session ended: answer it as failed with `error`, unless
    one of the `pending` deliveries of the agent's answer is confirmed (then that is its result)."""

    request: CommandRequest
    error: str
    pending: tuple[Delivery, ...] = ()


def classify(error: ValidationError) -> tuple[wire.ErrorCode, str]:
    """A short machine-readable code and a one-line detail for a refused frame."""
    first = error.errors(include_url=False, include_input=False)[0]
    kind = first["type"]
    if kind == "json_invalid" or (kind == "model_attributes_type" and not first["loc"]):
        return "invalid_json", "not a JSON object"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return "unknown_type", "missing or unknown `type`"
    location = ".".join(str(part) for part in first["loc"][1:]) or "frame"
    return "validation", f"{location}: {first['msg']}"[:200]


def _text(frame: wire._Frame) -> bytes:
    return frame.to_bytes()


_METRICS_RECEIVED = _text(wire.MetricsReceivedFrame())  # the same bytes for every legacy ack

# The errors of the commands a session decides as failed once the agent answered.
NOT_RESENT = "the agent's answer could not be stored and was not sent again"
NOT_ANSWERED = "agent disconnected before answering"
NOT_STORED = "agent disconnected before its answer was stored"


class AgentSession:
    def __init__(
        self,
        websocket: WebSocket,
        runtime: Runtime,
        key_id: uuid.UUID,
        server_id: uuid.UUID,
        remote: str,
    ) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.settings = runtime.settings
        self.key_id = key_id
        self.server_id = server_id
        self.remote = remote
        self.connection_id = uuid.uuid4()
        self.since = utcnow()
        self.dialect: Dialect = "unknown"
        self.claimed = False  # agent_connections holds this connection's row
        self._key = topics.server_key(server_id)
        self._outbound: asyncio.Queue[bytes | _Pending] = asyncio.Queue(
            maxsize=self.settings.max_in_flight + 64
        )
        self._in_flight = asyncio.Semaphore(self.settings.max_in_flight)
        self._invalid: deque[float] = deque(maxlen=self.settings.invalid_frame_limit)
        self._window = self.settings.timestamp_window
        self._kicked: asyncio.Future[CloseReason] = asyncio.get_running_loop().create_future()
        self._waiting: deque[CommandRequest] = deque()
        self._active: dict[uuid.UUID, _Active] = {}
        self._expiries: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._ended = False
        self._last_frame = asyncio.get_running_loop().time()
        self._pace = _Pace(self.settings.frame_rate, self.settings.frame_burst, self._last_frame)
        frames = runtime.metrics.frames
        self._count_metrics = frames.labels("metrics")
        self._count_legacy = frames.labels("legacy_metrics")
        self._ack_counters: dict[str, Counter] = {}  # per dialect: no label lookup per ack

    # ---- lifecycle --------------------------------------------------------------------------

    def kick(self, code: int, reason: str, *, superseded: bool = False) -> None:
        """End the session from outside (newer socket, revoked key, shutdown)."""
        if not self._kicked.done():
            self._kicked.set_result(CloseReason(code, reason, superseded, flush=False))

    async def run(self) -> CloseReason:
        """Serve the socket until it ends; returns why it ended (closing it if still open)."""
        receiver = asyncio.create_task(self._receive(), name=f"ingest-recv-{self.connection_id}")
        sender = asyncio.create_task(self._send(), name=f"ingest-send-{self.connection_id}")
        idle = asyncio.create_task(self._watch_idle(), name=f"ingest-idle-{self.connection_id}")
        try:
            waiters: set[asyncio.Future[Any]] = {receiver, sender, idle, self._kicked}
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self._kicked in done:
                outcome = self._kicked.result()
            elif idle in done:
                outcome = idle.result()
            elif receiver in done:
                outcome = receiver.result()
                if outcome.flush and outcome.code != 1000:
                    # Let the sender flush the error frame (and earlier acks) before the close.
                    await self._drain(sender)
            else:
                sender.result()  # re-raise what stopped the sender
                outcome = CloseReason(1011, "sender stopped")
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            outcome = CloseReason(1006, f"connection lost: {type(exc).__name__}", flush=False)
        finally:
            for task in (receiver, sender, idle):
                task.cancel()
            for task in (receiver, sender, idle):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if outcome.code not in (1000, 1005, 1006):
            with contextlib.suppress(Exception):
                await self.websocket.close(code=outcome.code, reason=outcome.reason[:120])
        return outcome

    async def _drain(self, sender: asyncio.Task[None]) -> None:
        # Every queued item (error frames, pending acks) is sent or given up within this bound.
        deadline = self.settings.produce_timeout + 1.0
        joined = asyncio.ensure_future(self._outbound.join())
        await asyncio.wait({joined, sender}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()

    # ---- receiver ---------------------------------------------------------------------------

    async def _receive(self) -> CloseReason:
        settings = self.settings
        metrics = self.runtime.metrics
        loop = asyncio.get_running_loop()
        while True:
            wait = self._pace.take(loop.time())
            if wait > 0:
                # Past the frame rate: the next frame is read later. uvicorn reads nothing more
                # from the socket until it is, so the agent is slowed by TCP backpressure.
                metrics.paced.inc()
                await asyncio.sleep(wait)
            message = await self.websocket.receive()
            self._last_frame = loop.time()
            if message["type"] == "websocket.disconnect":
                peer_code = int(message.get("code") or 1005)
                if peer_code == wire.CLOSE_TOO_BIG:
                    metrics.refusals.labels("too_big").inc()
                return CloseReason(1000, f"agent closed ({peer_code})", flush=False)
            text = message.get("text")
            if text is None:
                metrics.refusals.labels("binary").inc()
                return CloseReason(wire.CLOSE_UNSUPPORTED, "binary frames are not accepted")
            raw = text.encode()
            if len(raw) > settings.max_frame_bytes:
                metrics.refusals.labels("too_big").inc()
                return CloseReason(wire.CLOSE_TOO_BIG, f"frame over {settings.max_frame_bytes} bytes")
            try:
                frame = wire.decode(raw, self._window, utcnow())
            except ValidationError as exc:
                # A value out of its bounds is a validation error like any other: refused with
                # the error frame (its seq echoed, so the agent drops it), counted, no ack, and
                # the socket stays open.
                code, detail = classify(exc)
                closing = await self._invalid_frame(code, detail, seq=wire.refused_seq(raw))
                if closing:
                    return closing
                continue
            closing = await self._handle(frame)
            if closing:
                return closing

    async def _watch_idle(self) -> CloseReason:
        """Ends the session when no frame came for `idle_timeout` (one timer per socket, not one
        timeout per frame: cheaper on the hot path)."""
        loop = asyncio.get_running_loop()
        idle = self.settings.idle_timeout
        while True:
            remaining = self._last_frame + idle - loop.time()
            if remaining <= 0:
                self.runtime.metrics.refusals.labels("idle").inc()
                return CloseReason(1001, "idle: no frame received in time", flush=False)
            await asyncio.sleep(remaining)

    async def _invalid_frame(
        self, code: wire.ErrorCode, detail: str, message: str = wire.INVALID_FORMAT, seq: int | None = None
    ) -> CloseReason | None:
        self.runtime.metrics.refusals.labels(code).inc()
        await self._outbound.put(_text(wire.ErrorFrame(message=message, code=code, detail=detail, seq=seq)))
        now = asyncio.get_running_loop().time()
        self._invalid.append(now)
        limit = self.settings.invalid_frame_limit
        if len(self._invalid) >= limit and now - self._invalid[0] <= self.settings.invalid_frame_window:
            self.runtime.metrics.refusals.labels("too_many_invalid").inc()
            return CloseReason(wire.CLOSE_POLICY, "too many invalid frames")
        return None

    async def _handle(self, frame: wire.AgentFrame) -> CloseReason | None:
        metrics = self.runtime.metrics
        now = utcnow()
        names = self.runtime.topic_names
        if isinstance(frame, wire.PingFrame):
            metrics.frames.labels("ping").inc()
            await self._outbound.put(_text(wire.PongFrame()))
            return None
        if isinstance(frame, wire.AuthFrame):
            return await self._invalid_frame("unknown_type", "already authenticated")
        if isinstance(frame, wire.SeedMetricsFrame | wire.LegacyMetricsFrame):
            dialect: Dialect = "legacy" if isinstance(frame, wire.LegacyMetricsFrame) else "seed"
            if self.dialect not in ("unknown", dialect):
                return await self._invalid_frame(
                    "validation", f"this connection speaks the {self.dialect} dialect"
                )
            if isinstance(frame, wire.SeedMetricsFrame) and frame.server_id not in (None, self.server_id):
                return await self._mismatch(frame.seq)
            try:
                if isinstance(frame, wire.SeedMetricsFrame):
                    # Validated once, by `decode`: the seed frame's fields are the canonical ones.
                    value = frame.canonical_bytes(self.server_id, now, self.settings.max_processes)
                else:
                    value = frame.to_canonical(self.server_id, now, self.settings.max_processes).to_bytes()
            except ValidationError as exc:
                return await self._invalid_frame("validation", classify(exc)[1])
            (self._count_legacy if dialect == "legacy" else self._count_metrics).inc()
            if self.dialect == "unknown":
                self.dialect = dialect
                self._pump()  # commands held until the dialect was known
            seq = frame.seq if isinstance(frame, wire.SeedMetricsFrame) else None
            if dialect == "legacy":
                ack: bytes | None = _METRICS_RECEIVED
            else:
                ack = wire.ack_bytes(seq) if seq is not None else None
            return await self._produce([(names.metrics, self._key, value)], ack, seq)
        if isinstance(frame, wire.LogFrame | wire.LogsFrame):
            if frame.server_id not in (None, self.server_id):
                return await self._mismatch(frame.seq)
            metrics.frames.labels(frame.type).inc()
            records = [(names.logs, self._key, r.to_bytes()) for r in frame.to_canonical(self.server_id, now)]
            ack = _text(wire.AckFrame(seq=frame.seq)) if frame.seq is not None else None
            return await self._produce(records, ack, frame.seq)
        # Replies to commands, either dialect.
        metrics.frames.labels(frame.type).inc()
        seq = frame.seq if isinstance(frame, wire.CommandResponseFrame | wire.DockerResponseFrame) else None
        ack = _text(wire.AckFrame(seq=seq)) if seq is not None else None
        answered = self._answer_of(frame, now)
        if answered is None:
            metrics.commands.labels("unmatched_reply").inc()
            if ack is not None:
                # Nothing to store for a reply nobody waits for (its command was decided: its
                # result is already durable, or it was never ours): acknowledge it so it is not
                # resent.
                await self._outbound.put(ack)
            return None
        active, result, first = answered
        if first:
            metrics.commands.labels("answered" if result.success else "failed_by_agent").inc()
        else:
            metrics.commands.labels("resent_reply").inc()
        return await self._produce([(names.command_results, self._key, result.to_bytes())], ack, seq, active)

    async def _mismatch(self, seq: int | None) -> CloseReason | None:
        return await self._invalid_frame(
            "server_id_mismatch",
            f"server_id must be {self.server_id}, the API key's server",
            message="server_id does not match the API key's server",
            seq=seq,
        )

    async def _produce(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        ack: bytes | None,
        seq: int | None,
        command: _Active | None = None,
    ) -> CloseReason | None:
        # At most max_in_flight unconfirmed frames: waiting here stops reading the socket.
        await self._in_flight.acquire()
        try:
            delivery = await self.runtime.producer.enqueue(records, self.settings.produce_timeout)
        except BrokerUnavailable as exc:
            self._in_flight.release()
            self.runtime.metrics.refusals.labels("broker_unavailable").inc()
            if command is not None:
                self._wait_for_resend(command)
            await self._outbound.put(_retry_frame(seq, str(exc)))
            return None
        command_id = None
        if command is not None:
            command.storing.append(delivery)
            command_id = command.request.command_id
        await self._outbound.put(_Pending(delivery, ack, seq, command_id))
        return None

    # ---- sender -----------------------------------------------------------------------------

    async def _send(self) -> None:
        metrics = self.runtime.metrics
        while True:
            item = await self._outbound.get()
            if isinstance(item, bytes):
                await self._send_text(item)
                self._outbound.task_done()
                continue
            try:
                await item.delivery.wait(self.settings.produce_timeout)
            except BrokerUnavailable as exc:
                # Never a silent drop: no ack, and an error that asks the agent to send it again.
                metrics.refusals.labels("broker_unavailable").inc()
                if item.command_id is not None:
                    self._not_stored(item.command_id, item.delivery)
                await self._send_text(_retry_frame(item.seq, str(exc)))
            else:
                if item.command_id is not None:
                    self._stored(item.command_id)
                if item.ack is not None:
                    # Guarantee: this ack is sent only after Kafka confirmed every record of the frame.
                    await self._send_text(item.ack)
                    self._acks(self.dialect).inc()
            finally:
                self._in_flight.release()
                self._outbound.task_done()

    def _acks(self, dialect: str) -> Counter:
        counter = self._ack_counters.get(dialect)
        if counter is None:
            counter = self._ack_counters[dialect] = self.runtime.metrics.acks.labels(dialect)
        return counter

    async def _send_text(self, data: bytes) -> None:
        await self.websocket.send({"type": "websocket.send", "text": data.decode()})

    # ---- commands ---------------------------------------------------------------------------

    def deliver(self, request: CommandRequest) -> None:
        """Queue a command for this agent; it is sent once the dialect is known (and, for a
        legacy agent, once no other command is in flight)."""
        if self._ended:
            self.runtime.fail_command(request, "agent disconnected")
            return
        if len(self._waiting) >= self.settings.command_queue:
            self.runtime.fail_command(request, "too many commands waiting for this agent")
            return
        self._waiting.append(request)
        delay = max(0.0, (request.deadline - utcnow()).total_seconds())
        loop = asyncio.get_running_loop()
        self._expiries[request.command_id] = loop.call_later(delay, self._expire_waiting, request.command_id)
        self._pump()

    def _expire_waiting(self, command_id: uuid.UUID) -> None:
        self._expiries.pop(command_id, None)
        for request in self._waiting:
            if request.command_id == command_id:
                self._waiting.remove(request)
                self.runtime.fail_command(request, "deadline passed before the agent could take it")
                return

    def _pump(self) -> None:
        if self.dialect == "unknown" or self._ended:
            return  # hold commands until the connection's dialect is known: never guess
        while self._waiting and not (self.dialect == "legacy" and self._active):
            request = self._waiting.popleft()
            expiry = self._expiries.pop(request.command_id, None)
            if expiry is not None:
                expiry.cancel()
            if utcnow() >= request.deadline:
                self.runtime.fail_command(request, "deadline passed before the agent could take it")
                continue
            frame = _command_frame(request, self.dialect)
            try:
                self._outbound.put_nowait(_text(frame))
            except asyncio.QueueFull:
                self.runtime.fail_command(request, "the agent is not reading its socket")
                continue
            loop = asyncio.get_running_loop()
            expires_at = loop.time() + request.timeout_seconds
            handle = loop.call_at(expires_at, self._expire_active, request.command_id)
            self._active[request.command_id] = _Active(request, handle, expires_at)
            self.runtime.metrics.commands.labels("delivered").inc()

    def _expire_active(self, command_id: uuid.UUID) -> None:
        active = self._active.get(command_id)
        if active is None or active.timed_out:
            return
        if active.storing:
            # Its answer is with Kafka: the delivery decides (stored, or a `retry` and a wait for
            # the resend, which arms this timer again).
            return
        if active.answered_at is not None:
            # The agent answered (so it is not running it any more), Kafka did not confirm the
            # answer and the agent did not send it again in time: a result all the same.
            del self._active[command_id]
            self.runtime.fail_command(active.request, NOT_RESENT)
            self._pump()
            return
        self.runtime.fail_command(active.request, "timed out waiting for the agent's answer")
        if self.dialect == "legacy":
            # A legacy agent has no timeout of its own and runs one command at a time: never
            # assume it stopped. The slot stays taken until its late answer or the disconnect.
            active.timed_out = True
            return
        del self._active[command_id]
        self._pump()

    def _stored(self, command_id: uuid.UUID) -> None:
        """Kafka confirmed an answer of the command: that is its result, the command is done."""
        active = self._active.get(command_id)
        if active is None or active.timed_out:
            return
        del self._active[command_id]
        active.handle.cancel()
        self._pump()

    def _not_stored(self, command_id: uuid.UUID, delivery: Delivery) -> None:
        """Kafka did not confirm an answer in time: the agent gets a `retry` error and the command
        waits for its resend. Should Kafka confirm it later after all, it counts as stored."""
        active = self._active.get(command_id)
        if active is None:
            return
        with contextlib.suppress(ValueError):
            active.storing.remove(delivery)
        active.given_up.append(delivery)
        delivery.on_confirmed(lambda: self._stored(command_id))
        if not active.storing:
            self._wait_for_resend(active)

    def _wait_for_resend(self, active: _Active) -> None:
        # Until the command's own timeout, and at least `command_resend_grace` from now: a timeout
        # that passed while Kafka was waited for must not refuse the resend it asks for.
        loop = asyncio.get_running_loop()
        active.handle.cancel()
        at = max(active.expires_at, loop.time() + self.settings.command_resend_grace)
        active.handle = loop.call_at(at, self._expire_active, active.request.command_id)

    def _answer_of(self, frame: wire.AgentFrame, now: datetime) -> tuple[_Active, CommandResult, bool] | None:
        """The command a reply answers, its result, and whether it is the first answer (not a
        resend); None for a reply no command waits for."""
        if isinstance(frame, wire.CommandResponseFrame | wire.DockerResponseFrame):
            command_id: uuid.UUID | None = frame.command_id
        else:
            request_id = getattr(frame, "request_id", None)
            try:
                command_id = uuid.UUID(request_id) if request_id else None
            except ValueError:
                command_id = None
        active = self._active.get(command_id) if command_id is not None else None
        if active is None or command_id is None:
            return None
        if active.timed_out:
            del self._active[command_id]
            active.handle.cancel()
            self._pump()
            self.runtime.metrics.commands.labels("late_reply").inc()
            return None  # already answered as timed out: one result per command
        # Not popped: the command stays active until Kafka confirmed its answer (`_stored`).
        first = active.answered_at is None
        if active.answered_at is None:
            active.answered_at = now
        result = self._result_of(frame, active, active.answered_at)
        return None if result is None else (active, result, first)

    def _result_of(self, frame: wire.AgentFrame, active: _Active, now: datetime) -> CommandResult | None:
        # `now` is the first answer's time: a resent answer gives the same result, byte for byte.
        base = {"command_id": active.request.command_id, "server_id": self.server_id, "finished_at": now}
        match frame:
            case wire.CommandResponseFrame():
                return CommandResult(
                    **base,
                    success=frame.exit_code == 0 and frame.error is None,
                    output=frame.output,
                    error=frame.error,
                    exit_code=frame.exit_code,
                    duration_ms=frame.duration_ms,
                )
            case wire.DockerResponseFrame():
                return CommandResult(
                    **base,
                    success=frame.success,
                    message=frame.message,
                    logs=tuple(frame.logs) if frame.logs is not None else None,
                )
            case wire.LegacyCommandResultFrame():
                elapsed = now - active.request.requested_at
                return CommandResult(
                    **base,
                    success=frame.data.exit_code == 0,
                    output=frame.data.output,
                    exit_code=frame.data.exit_code,
                    duration_ms=max(0, int(elapsed / timedelta(milliseconds=1))),
                )
            case wire.LegacyContainerLogsFrame():
                logs = frame.data.logs
                return CommandResult(**base, success=True, logs=tuple(logs) if logs is not None else None)
            case (
                wire.LegacyContainerStartedFrame()
                | wire.LegacyContainerStoppedFrame()
                | wire.LegacyContainerRestartedFrame()
            ):
                return CommandResult(**base, success=True, message=f"Container {frame.data.status or 'done'}")
            case wire.LegacyErrorFrame():
                return CommandResult(
                    **base, success=False, error=frame.message or "the agent reported an error"
                )
        return None

    def end(self, reason: str) -> list[Unanswered]:
        """Stop taking commands; returns those still waiting or undecided (to be failed, unless
        Kafka confirms an answer that was on its way)."""
        self._ended = True
        for handle in self._expiries.values():
            handle.cancel()
        self._expiries.clear()
        left = [Unanswered(request, NOT_ANSWERED) for request in self._waiting]
        self._waiting.clear()
        for active in self._active.values():
            active.handle.cancel()
            if active.timed_out:
                continue
            if active.answered_at is None:
                left.append(Unanswered(active.request, NOT_ANSWERED))
            else:
                pending = (*active.storing, *active.given_up)  # any of them may still be confirmed
                left.append(Unanswered(active.request, NOT_STORED, pending))
        self._active.clear()
        return left


def _retry_frame(seq: int | None, detail: str) -> bytes:
    return _text(
        wire.ErrorFrame(
            message="Frame not stored, send it again",
            code="retry",
            detail=detail[:200],
            seq=seq,
            retry=True,
        )
    )


def _command_frame(request: CommandRequest, dialect: Dialect) -> wire._Frame:
    container = request.container_id or ""
    if dialect == "legacy":
        request_id = str(request.command_id)
        match request.action:
            case "shell":
                return wire.ExecuteCommandFrame(request_id=request_id, command=request.command or "")
            case "start":
                return wire.StartContainerFrame(request_id=request_id, container_id=container)
            case "stop":
                return wire.StopContainerFrame(request_id=request_id, container_id=container)
            case "restart":
                return wire.RestartContainerFrame(request_id=request_id, container_id=container)
            case "logs":
                return wire.GetContainerLogsFrame(
                    request_id=request_id, container_id=container, tail=request.tail or 100
                )
    if request.action == "shell":
        return wire.CommandFrame(command_id=request.command_id, command=request.command or "")
    return wire.DockerCommandFrame(
        command_id=request.command_id, action=request.action, container_id=container, tail=request.tail
    )


class _Pace:
    """A token bucket: `rate` frames per second on average, `burst` at once."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one frame's token; the seconds to wait before reading it (0 when it is there)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
