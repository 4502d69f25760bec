"""Everything one ingest process owns while it runs, opened and closed by the app's lifespan.

Start order: database pool, producer, the sessions hub, the command/revocation consumer, then the
presence loop. Stop order is the reverse, after every socket was asked to go away, so their
disconnect events still reach Kafka through the producer before it flushes and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas import topics
from schemas.canonical import (
    COMMAND_REQUEST,
    KEY_REVOCATION,
    AgentEvent,
    CommandRequest,
    CommandResult,
    KeyRevocation,
    utcnow,
)

from . import db as db_module
from .errors import BrokerUnavailable, DatabaseUnavailable, IngestError
from .metrics import IngestMetrics
from .producer import Delivery, Producer
from .ratelimit import FailedAuthLimiter, KeyAuthGate
from .session import AgentSession
from .settings import IngestSettings

log = logging.getLogger(__name__)

NIL_SERVER = uuid.UUID(int=0)  # the server of an auth failure whose key names none
CLOSE_SHUTDOWN = 1001


@dataclass(frozen=True, slots=True)
class TopicNames:
    metrics: str
    logs: str
    agent_events: str
    commands: str
    command_results: str
    key_revocations: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        return cls(
            metrics=topics.METRICS.name(prefix),
            logs=topics.LOGS.name(prefix),
            agent_events=topics.AGENT_EVENTS.name(prefix),
            commands=topics.COMMANDS.name(prefix),
            command_results=topics.COMMAND_RESULTS.name(prefix),
            key_revocations=topics.KEY_REVOCATIONS.name(prefix),
        )


class Runtime:
    def __init__(self, settings: IngestSettings, metrics: IngestMetrics) -> None:
        common = settings.common
        self.settings = settings
        self.metrics = metrics
        self.ingest_id = settings.ingest_id
        self.topic_names = TopicNames.with_prefix(common.topic_prefix)
        self.pepper = common.key_pepper.get_secret_value().encode()
        self.db = db_module.Database(
            common.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=settings.db_timeout,
        )
        # Failures by address and by key, separately: someone else's failures never refuse a
        # valid key (ratelimit.py).
        window, tracked = settings.auth_fail_window, settings.auth_fail_tracked
        self.auth = KeyAuthGate(
            FailedAuthLimiter(settings.auth_fail_limit, window, tracked),
            FailedAuthLimiter(settings.key_fail_limit, window, tracked),
            lambda key: self.db.verify_key(key, self.pepper),
        )
        self.producer = Producer(
            common.kafka_bootstrap,
            linger_ms=settings.linger_ms,
            request_timeout_ms=int(settings.produce_timeout * 1000),
            metrics=metrics,
        )
        self.sessions: dict[uuid.UUID, AgentSession] = {}  # server id -> its newest socket here
        self._handlers: set[asyncio.Task[Any]] = set()  # socket handlers, awaited at shutdown
        self._tasks: set[asyncio.Task[Any]] = set()  # background loops, cancelled at stop
        self._publishes: set[asyncio.Task[Any]] = set()  # results being published, awaited at stop
        self._consumer: AIOKafkaConsumer | None = None
        self.stopping = False

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.db.start()
            await self.producer.start()
            await self._start_consumer()
        except BaseException:
            await self.stop()
            raise
        self._spawn_loop(self._consume(), "ingest-commands")
        self._spawn_loop(self._presence(), "ingest-presence")

    async def stop(self) -> None:
        self.stopping = True
        for session in list(self.sessions.values()):
            session.kick(CLOSE_SHUTDOWN, "ingest is shutting down: reconnect")
        if self._handlers:
            # Each handler publishes its disconnect event; bounded so a stuck socket cannot hang us.
            await asyncio.wait(self._handlers, timeout=self.settings.produce_timeout + 2)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._publishes:
            # Commands failed by the closing sockets: their results go out before the producer stops
            # (after waiting, each, up to one produce timeout for an answer Kafka had not confirmed).
            await asyncio.wait(self._publishes, timeout=2 * self.settings.produce_timeout + 1)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        await self.producer.stop()  # flushes what is buffered (the last events and results)
        await self.db.stop()

    def _spawn_loop(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def track_handler(self, task: asyncio.Task[Any]) -> None:
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    # ---- sessions ---------------------------------------------------------------------------

    def register(self, session: AgentSession) -> None:
        """The newest socket of a server wins; the previous one here is closed as superseded."""
        old = self.sessions.get(session.server_id)
        self.sessions[session.server_id] = session
        self.metrics.connections.set(len(self.sessions))
        if old is not None:
            old.kick(4000, "superseded by a newer connection of this server", superseded=True)

    def unregister(self, session: AgentSession) -> bool:
        """Forget the session; True if it was still the server's current one here."""
        if self.sessions.get(session.server_id) is session:
            del self.sessions[session.server_id]
            self.metrics.connections.set(len(self.sessions))
            return True
        return False

    async def publish_event(self, event: AgentEvent) -> None:
        await self.producer.send(
            [(self.topic_names.agent_events, topics.server_key(event.server_id), event.to_bytes())],
            self.settings.produce_timeout,
        )

    # ---- commands ---------------------------------------------------------------------------

    def fail_command(
        self, request: CommandRequest, error: str, *, unless_stored: Sequence[Delivery] = ()
    ) -> None:
        """Answer a command as failed (asynchronously, never blocking the caller); unless one of
        `unless_stored`, the deliveries of the agent's answer, is confirmed by Kafka in time: then
        that answer is the command's result (one result per command)."""
        if not unless_stored:
            self.metrics.commands.labels("failed").inc()
        task = asyncio.create_task(
            self._fail_unless_stored(request, error, unless_stored), name=f"ingest-fail-{request.command_id}"
        )
        self._publishes.add(task)
        task.add_done_callback(self._publishes.discard)

    async def _fail_unless_stored(
        self, request: CommandRequest, error: str, deliveries: Sequence[Delivery]
    ) -> None:
        deadline = asyncio.get_running_loop().time() + self.settings.produce_timeout
        for delivery in deliveries:
            try:
                await delivery.wait(max(0.001, deadline - asyncio.get_running_loop().time()))
            except BrokerUnavailable:
                continue
            self.metrics.commands.labels("stored_after_disconnect").inc()
            return
        if deliveries:
            self.metrics.commands.labels("failed").inc()
        result = CommandResult(
            command_id=request.command_id,
            server_id=request.server_id,
            success=False,
            error=error,
            finished_at=utcnow(),
        )
        await self._publish_result(result)

    async def _publish_result(self, result: CommandResult) -> None:
        try:
            await self.producer.send(
                [(self.topic_names.command_results, topics.server_key(result.server_id), result.to_bytes())],
                self.settings.produce_timeout,
            )
        except IngestError as exc:
            log.warning("could not publish the result of command %s: %s", result.command_id, exc)

    async def _start_consumer(self) -> None:
        names = self.topic_names
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.common.kafka_bootstrap,
            group_id=None,  # every ingest process reads every partition: no consumer group
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id=f"fleetpulse-ingest-{self.ingest_id}",
        )
        try:
            await consumer.start()
            partitions: list[TopicPartition] = []
            for topic in (names.commands, names.key_revocations):
                ids = await self.producer.partitions_for(topic)
                partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
            for topic in (names.metrics, names.logs, names.command_results, names.agent_events):
                await self.producer.partitions_for(topic)  # fails fast if a topic is missing
            consumer.assign(partitions)
            # From the end: a command published before this process started was for a socket
            # some other (or an earlier) process held. Resolve the positions now, so anything
            # published after start() returns is seen.
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
        except (KafkaError, OSError, BrokerUnavailable) as exc:
            await consumer.stop()
            raise BrokerUnavailable(f"cannot start the command consumer: {exc}") from exc
        self._consumer = consumer

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        names = self.topic_names
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
            except KafkaError as exc:
                log.warning("command consumer: %s; retrying", exc)
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                for record in records:
                    # Never let one bad record stop the loop: it would stall every later command.
                    try:
                        if tp.topic == names.commands:
                            await self._on_command(COMMAND_REQUEST.validate_json(record.value or b""))
                        else:
                            self._on_revocation(KEY_REVOCATION.validate_json(record.value or b""))
                    except ValidationError as exc:
                        log.warning("undecodable record %s@%s: %s", tp, record.offset, exc)
                    except Exception:
                        log.exception("failed to handle record %s@%s", tp, record.offset)

    async def _on_command(self, request: CommandRequest) -> None:
        self.metrics.commands.labels("seen").inc()
        session = self.sessions.get(request.server_id)
        if session is None:
            try:
                holder = await self.db.holder(request.server_id, 3 * self.settings.presence_interval)
            except DatabaseUnavailable as exc:
                log.warning("command %s: cannot tell who holds the agent: %s", request.command_id, exc)
                return
            if holder is not None and holder != self.ingest_id:
                return  # another ingest process holds the socket: it answers
        # Exactly one process decides each command (a socket may be moving between processes).
        try:
            if not await self.db.claim_command(request.command_id, self.ingest_id):
                return
        except DatabaseUnavailable as exc:
            log.warning("command %s: cannot claim it: %s", request.command_id, exc)
            return
        if utcnow() >= request.deadline:
            self.fail_command(request, "deadline passed before the agent could take it")
        elif session is None or self.sessions.get(request.server_id) is not session:
            self.fail_command(request, "agent not connected")
        else:
            session.deliver(request)

    def _on_revocation(self, revocation: KeyRevocation) -> None:
        for session in list(self.sessions.values()):
            if session.key_id == revocation.key_id:
                self.metrics.refusals.labels("key_revoked").inc()
                session.kick(1008, f"API key {revocation.reason}")

    async def _presence(self) -> None:
        """Refresh agent_connections, close sockets superseded elsewhere, re-check keys."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        next_key_check = loop.time() + settings.key_recheck_interval
        next_purge = loop.time()
        while True:
            await asyncio.sleep(settings.presence_interval)
            claimed = [s for s in self.sessions.values() if s.claimed]
            try:
                if claimed:
                    owned = await self.db.refresh_presence(self.ingest_id, [s.connection_id for s in claimed])
                    for session in claimed:
                        if session.connection_id not in owned:
                            # A newer socket of this server took the row, on another process.
                            session.kick(
                                4000, "superseded by a newer connection of this server", superseded=True
                            )
                if loop.time() >= next_key_check:
                    next_key_check = loop.time() + settings.key_recheck_interval
                    current = list(self.sessions.values())
                    if current:
                        invalid = await self.db.invalid_keys(list({s.key_id for s in current}))
                        for session in current:
                            if session.key_id in invalid:
                                self.metrics.refusals.labels("key_revoked").inc()
                                session.kick(1008, "API key no longer valid")
                if loop.time() >= next_purge:
                    next_purge = loop.time() + 3600
                    await self.db.purge_claims()
            except DatabaseUnavailable as exc:
                log.warning("presence refresh failed: %s", exc)


def auth_failed_event(runtime: Runtime, server_id: uuid.UUID | None, reason: str, remote: str) -> AgentEvent:
    return AgentEvent(
        server_id=server_id or NIL_SERVER,
        event="auth_failed",
        time=utcnow(),
        ingest_id=runtime.ingest_id,
        reason=reason,
        remote=remote,
    )
