"""The persistence consumer: Kafka batches into TimescaleDB, offsets committed after the database.

Why an aiokafka consumer inside a faust service instead of a faust agent with `stream.take()`:
faust's `Stream.take` acks every event of a batch in the `finally` of its generator
(faust/streams.py, `take`): when the agent's body raises, or the agent is cancelled by a
rebalance or a shutdown while a database write is being retried, those events are acked anyway,
and faust's commit loop then commits their offsets although their rows never reached the
database. That is exactly what the persistence path must never do, so it runs its own consumer in
the same consumer group on every worker, with `enable_auto_commit=False` and one explicit commit
per batch, made only after the batch's transaction has committed.

Delivery: at least once from Kafka, exactly once in effect, because every write is idempotent on
its table's natural key. A batch whose commit is lost (crash, rebalance) is read again and adds
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from schemas import topics
from schemas.canonical import utcnow

from . import db
from .batch import Batch, Decoded, Decoder, RecordLike, dead_letter, highest_offsets
from .db import Database
from .errors import DatabaseRejected, DatabaseUnavailable
from .settings import ProcessorSettings

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with full jitter, capped: never a tight crash loop, never a long nap."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch being written is committed (database, then Kafka).

    The lock is held only from "write the batch" to "commit its offsets", never while fetching:
    aiokafka's `getmany` waits for a reassignment in progress to finish, and the reassignment waits
    for this callback, so a lock held across the fetch would deadlock until the session expires.
    Records fetched before a revocation are dropped instead (the epoch changes), and the
    partitions' owner, possibly this worker again, reads them from the last committed offset.
    """

    def __init__(self, service: PersistenceService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._service.epoch += 1
        async with self._service.lock:
            # Nothing of the revoked partitions is being written any more: their next owner
            # starts after our last commit.
            log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


class _Abandoned(Exception):
    """The worker is stopping while a batch waits to be retried."""


class Stats:
    """Counters of one persistence consumer (also exposed on the worker's /health page)."""

    def __init__(self) -> None:
        self.batches = 0
        self.messages = 0  # messages taken from Kafka, including re-deliveries
        self.dead_letters = 0
        self.db_retries = 0
        self.commit_failures = 0
        self.dropped_after_rebalance = 0  # fetched, then revoked before being written

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class PersistenceService(mode.Service):
    """Reads the persisted topics in a consumer group and writes them in batches."""

    def __init__(self, settings: ProcessorSettings, database: Database, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._database = database
        self._decoder = Decoder(settings.common.topic_prefix)
        self._dead_letter_topic = topics.DEAD_LETTERS.name(settings.common.topic_prefix)
        self.lock = asyncio.Lock()  # held from a batch's write to its offset commit
        self.epoch = 0  # incremented by every revocation: older fetched records are stale
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._runner: asyncio.Task[None] | None = None
        self.stats = Stats()

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this worker holds now."""
        if self._consumer is None:
            return frozenset()
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def on_start(self) -> None:
        s = self._settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.common.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            client_id=f"{s.app_id}-dead-letters",
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.common.kafka_bootstrap,
            group_id=s.persist_group_id,
            client_id=f"{s.app_id}-persist",
            enable_auto_commit=False,  # offsets are committed by hand, after the database commit
            auto_offset_reset="earliest",
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=s.kafka_max_poll_interval_ms,
        )
        self._consumer.subscribe(self._decoder.topic_names, listener=_Rebalances(self))
        await self._consumer.start()
        self._runner = asyncio.create_task(self._run(), name="persist")

    async def on_stop(self) -> None:
        # Shutdown order: let the batch in flight finish (or give up on it: rolled back, not
        # committed, read again by the next owner), then leave the group, then the producer.
        self._stopping.set()
        if self._runner is not None:
            done, _ = await asyncio.wait({self._runner}, timeout=self._settings.shutdown_timeout_seconds)
            if not done:
                # Cancelled mid-transaction: rolled back, never committed to Kafka.
                self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping.is_set():
            try:
                records, epoch = await self._take(consumer)
                async with self.lock:
                    if records and epoch == self.epoch:
                        await self._handle(consumer, records)
                    elif records:
                        # A revocation came after the fetch: these may belong to another worker
                        # now. Uncommitted, so their owner reads them again.
                        self.stats.dropped_after_rebalance += len(records)
            except asyncio.CancelledError:
                raise
            except _Abandoned:
                # Stopping while the database is away: the batch is rolled back and uncommitted,
                # so the partitions' next owner reads it again.
                log.warning("stopping: the batch in flight is abandoned, uncommitted")
                return
            except Exception:
                # Never let an error end the loop: whatever was not committed is read again.
                log.exception("persistence batch failed; its offsets were not committed")
                with contextlib.suppress(_Abandoned):
                    await self._sleep(1.0)

    async def _take(self, consumer: AIOKafkaConsumer) -> tuple[list[RecordLike], int]:
        """Up to `batch_max_records` records, waiting at most `batch_within_seconds` after the
        first; and the rebalance epoch they were all fetched in."""
        s = self._settings
        loop = asyncio.get_running_loop()
        records: list[RecordLike] = []
        deadline: float | None = None
        epoch = self.epoch
        while len(records) < s.batch_max_records and not self._stopping.is_set():
            if deadline is None:
                timeout = s.batch_within_seconds
            else:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
            got = await consumer.getmany(
                timeout_ms=max(1, int(timeout * 1000)), max_records=s.batch_max_records - len(records)
            )
            if epoch != self.epoch:
                # A rebalance happened during the fetch: start the batch afresh (see _Rebalances).
                self.stats.dropped_after_rebalance += len(records)
                records, deadline, epoch = [], None, self.epoch
            for partition_records in got.values():
                records.extend(partition_records)
            if records and deadline is None:
                deadline = loop.time() + s.batch_within_seconds
            if not got and deadline is None:
                break
        return records, epoch

    async def _handle(self, consumer: AIOKafkaConsumer, records: Sequence[RecordLike]) -> None:
        batch = self._decoder.decode(records)
        self.stats.batches += 1
        self.stats.messages += len(records)
        await self._write(batch.messages)
        if batch.dead_letters:
            await self._send_dead_letters(batch)
        if batch.dead_letters or not batch.messages:
            # Dead-lettered positions count as persisted for the seam: they will never be rows.
            await self._record_offsets(batch.highest)
        offsets = {TopicPartition(t, p): o + 1 for (t, p), o in batch.highest.items()}
        try:
            # Kafka commit AFTER the database commit of every message of the batch: a crash
            # before this line replays the batch, which the natural keys make harmless.
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while we wrote: the partitions' next owner reads these
            # messages again and they add nothing. Nothing is lost.
            self.stats.commit_failures += 1
            log.warning("offset commit refused after a rebalance (%s); the batch will be re-read", exc)

    async def _write(self, messages: Sequence[Decoded]) -> None:
        """Write decoded messages in one transaction, retrying outages; isolate rejected ones."""
        if not messages:
            return
        try:
            await self._transaction(messages)
        except DatabaseRejected as exc:
            if len(messages) == 1:
                only = messages[0]
                log.error("dead-lettering %s: the database rejects it: %s", only.position, exc)
                letter = dead_letter(
                    only.position, None, only.payload.to_bytes(), f"database rejected: {exc}"
                )
                batch = Batch(dead_letters=[letter], highest=highest_offsets([only.position]))
                await self._send_dead_letters(batch)
                await self._record_offsets(batch.highest)
                return
            middle = len(messages) // 2
            await self._write(messages[:middle])
            await self._write(messages[middle:])

    async def _transaction(self, messages: Sequence[Decoded]) -> None:
        s = self._settings
        highest = highest_offsets(m.position for m in messages)
        backoff = Backoff(s.db_retry_initial_seconds, s.db_retry_max_seconds)
        while True:
            try:
                async with self._database.transaction() as conn:
                    await db.write_batch(
                        conn,
                        [m.payload for m in messages],
                        highest,
                        rollup_horizon=utcnow() - s.retention_raw,
                        stale_after=timedelta(seconds=s.stale_after_seconds),
                    )
                return
            except DatabaseUnavailable as exc:
                # Same batch again after a capped, jittered pause: nothing skipped, no crash loop.
                self.stats.db_retries += 1
                delay = backoff.next_delay()
                log.warning("database unavailable (%s); retrying the batch in %.2fs", exc, delay)
                await self._sleep(delay)

    async def _record_offsets(self, highest: dict[tuple[str, int], int]) -> None:
        s = self._settings
        backoff = Backoff(s.db_retry_initial_seconds, s.db_retry_max_seconds)
        while True:
            try:
                async with self._database.transaction() as conn:
                    await db.write_batch(
                        conn,
                        [],
                        highest,
                        rollup_horizon=utcnow() - s.retention_raw,
                        stale_after=timedelta(seconds=s.stale_after_seconds),
                    )
                return
            except DatabaseUnavailable as exc:
                self.stats.db_retries += 1
                delay = backoff.next_delay()
                log.warning("database unavailable (%s); retrying in %.2fs", exc, delay)
                await self._sleep(delay)

    async def _send_dead_letters(self, batch: Batch) -> None:
        producer = self._producer
        assert producer is not None
        s = self._settings
        backoff = Backoff(s.db_retry_initial_seconds, s.db_retry_max_seconds)
        for letter in batch.dead_letters:
            while True:
                try:
                    # Acknowledged by every in-sync replica before the offset is committed.
                    await producer.send_and_wait(self._dead_letter_topic, letter.to_bytes())
                    break
                except KafkaError as exc:
                    delay = backoff.next_delay()
                    log.warning("dead-letter topic unavailable (%s); retrying in %.2fs", exc, delay)
                    await self._sleep(delay)
            self.stats.dead_letters += 1
            log.warning(
                "dead letter from %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.error
            )

    async def _sleep(self, delay: float) -> None:
        """Sleep `delay` seconds; a stop cuts it short and abandons the batch in flight."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return
        raise _Abandoned
