"""Remote commands: publish a `CommandRequest`, wait for its `CommandResult`.

One consumer per API process reads every partition of the results topic, by manual assignment
(no consumer group: each replica must see every result, since any replica may hold the waiting
request) and from the end (older results have no waiter). Each request registers a future under
its command id before it is published, so a fast answer is never missed; the consumer resolves
it. A result for a command that nobody here waits for belongs to another replica and is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas import topics
from schemas.canonical import COMMAND_RESULT, CommandRequest, CommandResult

from .errors import GatewayTimeout, Unavailable
from .kafka import Producer

log = logging.getLogger(__name__)


class CommandBroker:
    def __init__(self, bootstrap: str, prefix: str, producer: Producer) -> None:
        self._topic = topics.COMMAND_RESULTS.name(prefix)
        self._producer = producer
        self._bootstrap = bootstrap
        self._consumer: AIOKafkaConsumer | None = None  # made by start(): never left unclosed
        self._waiting: dict[uuid.UUID, asyncio.Future[CommandResult]] = {}
        self._task: asyncio.Task[None] | None = None
        self._positions: dict[TopicPartition, int] = {}
        self.lag = 0  # messages behind the end of the results topic, for /metrics

    async def start(self) -> None:
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        try:
            partitions = await self._producer.partitions_for(topics.COMMAND_RESULTS)
            await consumer.start()
            assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            # Resolve the end positions now: a result published after start() returns is read.
            for tp in assigned:
                self._positions[tp] = await consumer.position(tp)
        except KafkaError as exc:
            await consumer.stop()
            raise Unavailable(f"Kafka unreachable: {exc}") from exc
        except Unavailable:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._run(), name="command-results")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._consumer is not None:
            await self._consumer.stop()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(Unavailable("the API is shutting down"))
        self._waiting.clear()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            except KafkaError as exc:  # a broker outage: keep trying, waiters time out meanwhile
                log.warning("reading command results failed, retrying: %s", exc)
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                for record in records:
                    self._deliver(record.value)
                if records:
                    self._positions[tp] = records[-1].offset + 1
            self._update_lag()

    def _deliver(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            result = COMMAND_RESULT.validate_json(raw)
        except ValueError:
            log.warning("undecodable command result skipped (%d bytes)", len(raw))
            return
        future = self._waiting.get(result.command_id)
        if future is not None and not future.done():
            future.set_result(result)

    def _update_lag(self) -> None:
        lag = 0
        for tp, position in self._positions.items():
            highwater = self._consumer.highwater(tp) if self._consumer is not None else None
            if highwater is not None:
                lag += max(0, highwater - position)
        self.lag = lag

    async def request(self, command: CommandRequest, wait_seconds: float) -> CommandResult:
        """Publish the command and wait for its result; GatewayTimeout after `wait_seconds`."""
        if self._task is None:
            raise Unavailable("command results are not being read")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._waiting[command.command_id] = future
        try:
            await self._producer.send_command(command)
            try:
                return await asyncio.wait_for(future, wait_seconds)
            except TimeoutError as exc:
                raise GatewayTimeout(
                    f"the agent did not answer within {wait_seconds:g} s (the command may still run)"
                ) from exc
        finally:
            self._waiting.pop(command.command_id, None)
