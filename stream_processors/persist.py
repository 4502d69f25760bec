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

THE INVARIANT, kept by this module: no position (the consumer's fetch position, the group's
committed offset, `persisted_offsets`) ever moves past a message that is neither written to the
database nor sent to the dead-letter topic.

- Fetch positions: every record handed to this service is remembered as unwritten
  (`_unwritten`, the first such offset per partition) until its batch's Kafka commit succeeded.
  Whatever exception ends a batch (a database error of any kind, an `OverflowError` from a codec,
  a bug, a dead-letter topic that refuses, a refused commit), `_run` rewinds every partition to its
  first unwritten offset (`_rewind`), and the same records are read and written again, after a
  capped, jittered backoff. Writes are idempotent, so a rewind never duplicates a row.
- Commits: one site, in `_handle`, after every message of the batch was written (its database
  transaction committed) or dead-lettered (the topic acknowledged it): see the comment there.
- `persisted_offsets` is written in the same transaction as the rows it covers, or, for messages
  that will never be rows, after their dead letters were acknowledged.

Isolation: a batch that fails with an error that does not pass (anything but `DatabaseUnavailable`,
not only psycopg's errors) is split in halves until the message at fault is alone; every other
message is written. A message alone that still fails is dead-lettered with its reason, but only
if a reference message of its kind can be written at that moment (`probe.py`, rolled back): when
even the reference fails, the fault is the system's (a bug, a broken migration), so nothing is
dead-lettered, `WritePathBroken` rewinds the batch, and it is retried with a capped backoff until
the write path works again, counted (`write_path_failures`) and logged as an error, with the
worker's /health saying `failing`. Dead letters may repeat after a rewind or a crash (at least
once): their `(topic, partition, offset)` identifies them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from schemas import topics
from schemas.canonical import DeadLetter, utcnow

from . import db
from .batch import Decoded, Decoder, Payload, RecordLike, dead_letter, highest_offsets
from .db import Database
from .errors import DatabaseUnavailable, ProcessorError, WritePathBroken, describe
from .probe import reference
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
            # (maybe this worker again) starts from the last committed offset, so nothing of
            # them is ours to rewind.
            self._service.forget(revoked)
            log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


class _Abandoned(Exception):
    """The worker is stopping while a batch waits to be retried."""


class CommitRefused(ProcessorError):
    """The group rebalanced before the batch's offsets were committed: the batch is read again."""

    retriable = True


class Stats:
    """Counters of one persistence consumer (also exposed on the worker's /health page)."""

    def __init__(self) -> None:
        self.batches = 0
        self.messages = 0  # messages taken from Kafka, including re-deliveries
        self.dead_letters = 0
        self.db_retries = 0
        self.commit_failures = 0
        self.dropped_after_rebalance = 0  # fetched, then revoked before being written
        self.failed_batches = 0  # batches ended by an exception: rewound and read again
        self.write_path_failures = 0  # a reference message could not be written either
        self.failing = 0  # consecutive failed batches now (0: healthy)

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
        # Per partition, the first offset handed to this service and not yet committed: where a
        # failed batch rewinds to (the invariant in the module's docstring).
        self._unwritten: dict[TopicPartition, int] = {}
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
        if consumer is None:
            raise RuntimeError("the persistence consumer is not started")
        s = self._settings
        backoff = Backoff(s.db_retry_initial_seconds, s.db_retry_max_seconds)
        while not self._stopping.is_set():
            handled = False
            try:
                records, epoch = await self._take(consumer)
                async with self.lock:
                    if records and epoch == self.epoch:
                        await self._handle(consumer, records)
                        handled = True
                    elif records:
                        # A revocation came after the fetch: these may belong to another worker
                        # now. Uncommitted, so their owner reads them again. Dropping them never
                        # skips a record: they were fetched before the revocation (`_take` checks
                        # the epoch right after each fetch, with no await in between, and aiokafka
                        # hands out nothing while a reassignment is in progress), and the
                        # reassignment resets every position to the group's last commit.
                        self.stats.dropped_after_rebalance += len(records)
            except asyncio.CancelledError:
                raise
            except _Abandoned:
                # Stopping while the database is away: the batch is rolled back and uncommitted,
                # so the partitions' next owner reads it again.
                log.warning("stopping: the batch in flight is abandoned, uncommitted")
                return
            except Exception as exc:
                # Whatever ended the batch, its records were not all stored: back to the first
                # unwritten offset of each partition, so the next fetch reads them again. Never
                # fetch on past them (the old code did, and the next batch committed over them).
                # No await since the lock was released: a revocation waiting for it runs after.
                self._rewind(consumer)
                self.stats.failed_batches += 1
                self.stats.failing += 1
                delay = backoff.next_delay()
                if isinstance(exc, WritePathBroken):
                    self.stats.write_path_failures += 1
                    log.error("persistence cannot write (%s); retrying the batch in %.2fs", exc, delay)
                elif isinstance(exc, CommitRefused):
                    log.warning("%s; the batch will be read again", exc)
                else:
                    log.exception("persistence batch failed; rewound, retrying in %.2fs", delay)
                try:
                    await self._sleep(delay)
                except _Abandoned:
                    return
            else:
                if handled and self.stats.failing:
                    log.info("persistence writes again after %d failed batches", self.stats.failing)
                if handled:
                    self.stats.failing = 0
                    backoff.reset()

    def _rewind(self, consumer: AIOKafkaConsumer) -> None:
        """Seek every partition with unwritten records back to the first of them."""
        assigned = consumer.assignment()
        for tp, offset in self._unwritten.items():
            if tp in assigned:
                consumer.seek(tp, offset)
        self._unwritten.clear()

    def forget(self, partitions: Any) -> None:
        """The partitions are no longer ours: their owner starts from the committed offset."""
        for tp in partitions:
            self._unwritten.pop(tp, None)

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
            for tp, partition_records in got.items():
                if partition_records:
                    # From here until its commit, this record is unwritten (see _rewind).
                    self._unwritten.setdefault(tp, partition_records[0].offset)
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
            await self._send_dead_letters(batch.dead_letters)
        if batch.dead_letters or not batch.messages:
            # Dead-lettered positions count as persisted for the seam: they will never be rows.
            await self._record_offsets(batch.highest)
        offsets = {TopicPartition(t, p): o + 1 for (t, p), o in batch.highest.items()}
        try:
            # THE commit site. Guarantee: every message of the batch is in the database (its
            # transaction committed) or in the dead-letter topic (acknowledged by every in-sync
            # replica). A crash before this line replays the batch, which the natural keys make
            # harmless; any exception above skips it and `_run` rewinds.
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while we wrote: the partitions' next owner reads these
            # messages again from the last commit, and they add nothing. Raised, so `_run`
            # rewinds what is still ours rather than fetching on past it.
            self.stats.commit_failures += 1
            raise CommitRefused(f"offset commit refused after a rebalance ({exc})") from exc
        for tp in offsets:
            self._unwritten.pop(tp, None)  # committed: the position and the group agree again

    async def _write(self, messages: Sequence[Decoded]) -> None:
        """Write decoded messages in one transaction, retrying outages; isolate what cannot be
        written (whatever it raises) by splitting, and dead-letter it (see the docstring)."""
        if not messages:
            return
        try:
            await self._transaction(messages)
            return
        except (_Abandoned, WritePathBroken):
            raise
        except Exception as exc:  # noqa: BLE001 - any error that does not pass: isolate its message
            failure = exc
        if len(messages) == 1:
            await self._unwritable(messages[0], failure)
            return
        middle = len(messages) // 2
        await self._write(messages[:middle])
        await self._write(messages[middle:])

    async def _unwritable(self, message: Decoded, failure: Exception) -> None:
        """Dead-letter a message that cannot be written, if the fault is the message's."""
        kind = type(message.payload)
        try:
            # Rolled back whatever happens: the reference leaves no row behind.
            async with self._database.transaction(rollback=True) as conn:
                await self._write_rows(conn, [reference(kind, utcnow())], {})
        except Exception as probe_failure:
            raise WritePathBroken(
                f"a {kind.__name__} at {message.position} cannot be written ({describe(failure)}), "
                f"nor can a reference {kind.__name__} ({describe(probe_failure)})"
            ) from probe_failure
        log.error("dead-lettering %s: it cannot be written: %s", message.position, describe(failure))
        letter = dead_letter(message.position, message.key, message.raw, f"unwritable: {describe(failure)}")
        await self._send_dead_letters([letter])
        await self._record_offsets(highest_offsets([message.position]))

    async def _transaction(self, messages: Sequence[Decoded]) -> None:
        s = self._settings
        highest = highest_offsets(m.position for m in messages)
        backoff = Backoff(s.db_retry_initial_seconds, s.db_retry_max_seconds)
        while True:
            try:
                # A database commit site. Guarantee: the rows of these messages and their
                # `persisted_offsets` commit together, or neither does.
                async with self._database.transaction() as conn:
                    await self._write_rows(conn, [m.payload for m in messages], highest)
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
                # A database commit site. Guarantee: called only once the positions' messages
                # are written or their dead letters acknowledged, so the seam never runs ahead.
                async with self._database.transaction() as conn:
                    await self._write_rows(conn, [], highest)
                return
            except DatabaseUnavailable as exc:
                self.stats.db_retries += 1
                delay = backoff.next_delay()
                log.warning("database unavailable (%s); retrying in %.2fs", exc, delay)
                await self._sleep(delay)

    async def _write_rows(
        self, conn: db.Conn, payloads: Sequence[Payload], highest: dict[tuple[str, int], int]
    ) -> None:
        s = self._settings
        await db.write_batch(
            conn,
            payloads,
            highest,
            rollup_horizon=utcnow() - s.retention_raw,
            stale_after=timedelta(seconds=s.stale_after_seconds),
        )

    async def _send_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("the dead-letter producer is not started")
        s = self._settings
        backoff = Backoff(s.db_retry_initial_seconds, s.db_retry_max_seconds)
        for letter in letters:
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
