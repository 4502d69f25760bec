"""The rules a worker evaluates: read from the compacted ALERT_RULES topic, kept in memory.

Every worker reads the whole topic (no consumer group: each needs every rule) from the beginning,
and evaluates nothing until it has caught up with the end it saw at start, so a restart never
evaluates samples against a partial rule set. Later messages apply as they arrive: a rule
created, changed or deleted takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from alerting.registry import RuleRegistry

log = logging.getLogger(__name__)


class RulesFeed:
    """Reads the rules topic into a registry. `start()` returns once caught up (or raises)."""

    def __init__(self, bootstrap: str, topic: str, registry: RuleRegistry, ready_timeout: float) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._registry = registry
        self._ready_timeout = ready_timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,  # every worker reads every rule
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            await asyncio.wait_for(self._catch_up(consumer), self._ready_timeout)
        except BaseException:
            await self.stop()
            raise
        self.ready.set()
        self._task = asyncio.create_task(self._follow(consumer), name="alert-rules-feed")

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        partitions: set[int] | None = None
        while not partitions:
            # The consumer knows only subscribed topics' partitions: read the cluster's metadata.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(self._topic)
            if not partitions:
                await asyncio.sleep(0.5)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not behind:
                break
            await self._poll(consumer)
        log.info("alert rules: %d rules loaded from %s", len(self._registry), self._topic)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=500, max_records=1000)
        for records in batches.values():
            for record in records:
                self._registry.apply_message(record.key, record.value)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await self._poll(consumer)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
