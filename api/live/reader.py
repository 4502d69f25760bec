"""The API process's one Kafka reader: manual partition assignment, no consumer group.

The hub says which partitions it wants and from which offset (`Hub.wanted`); the reader applies a
change between two fetches (re-assigning and seeking every wanted partition, so a kept partition
continues exactly where the hub is), and hands each fetched batch to `Hub.dispatch`. API replicas
never share a group, so each sees every message of the partitions its own clients watch.

A second consumer, used one request at a time, replays older spans of a partition for a new
subscriber whose start lies before the hub's in-memory window (a resume, or persistence lagging).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from .errors import Unavailable
from .frames import VIRTUAL_INTERFACES
from .hub import TP, Hub, Record

log = logging.getLogger(__name__)


class KafkaReader:
    def __init__(
        self,
        bootstrap: str,
        *,
        window_messages: int,
        poll_timeout_ms: int,
        max_poll_records: int,
        replay_consumers: int = 2,
        request_timeout_seconds: float = 30.0,
        client_id: str = "fleetpulse-api-live",
        network_total_exclude: tuple[str, ...] = VIRTUAL_INTERFACES,
    ) -> None:
        self._bootstrap = bootstrap
        self._poll_timeout_ms = poll_timeout_ms
        self._max_poll_records = max_poll_records
        self._request_timeout = request_timeout_seconds
        self._client_id = client_id
        self._changed = asyncio.Event()
        self.hub = Hub(window_messages, self._changed.set, network_total_exclude)
        self._consumer: AIOKafkaConsumer | None = None
        self._replayer: AIOKafkaConsumer | None = None  # offsets requests
        # Replays run on a small pool of consumers, one replay per consumer at a time.
        self._replay_consumers = replay_consumers
        self._replay_pool: asyncio.Queue[AIOKafkaConsumer] = asyncio.Queue()
        self._replay_all: list[AIOKafkaConsumer] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.records = 0
        self.replays = 0  # spans read again for new subscribers (observability and tests)

    def _new_consumer(self, suffix: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-{suffix}",
            group_id=None,  # never a group: each API process reads every message it needs
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._max_poll_records,
            fetch_max_wait_ms=self._poll_timeout_ms,
        )

    async def start(self) -> None:
        if self._task is not None:
            return
        self._consumer = self._new_consumer("live")
        self._replayer = self._new_consumer("offsets")
        self._replay_all = [self._new_consumer(f"replay-{i}") for i in range(self._replay_consumers)]
        try:
            await self._consumer.start()
            await self._replayer.start()
            for consumer in self._replay_all:
                await consumer.start()
                self._replay_pool.put_nowait(consumer)
        except KafkaError as exc:
            await self.stop()
            raise Unavailable(f"cannot reach Kafka: {exc}") from exc
        self._task = asyncio.create_task(self._run(), name="live-kafka-reader")

    async def stop(self) -> None:
        """Stop reading; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for consumer in (self._consumer, self._replayer, *self._replay_all):
            if consumer is not None:
                await consumer.stop()
        self._consumer = self._replayer = None
        self._replay_all = []
        self._replay_pool = asyncio.Queue()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        self._changed.set()
        while True:
            if self._changed.is_set():
                self._changed.clear()
                wanted = self.hub.wanted()
                tps = {tp: TopicPartition(tp.topic, tp.partition) for tp in wanted}
                consumer.assign(list(tps.values()))
                for tp, offset in wanted.items():
                    consumer.seek(tps[tp], offset)
            if not consumer.assignment():
                # Nothing to read: wait for the first subscriber.
                await self._changed.wait()
                continue
            try:
                batches = await consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_poll_records
                )
            except KafkaError as exc:
                # aiokafka reconnects by itself; keep the positions and try again shortly.
                log.warning("live reader fetch failed, retrying: %s", exc)
                await asyncio.sleep(0.5)
                self._changed.set()
                continue
            # If the assignment changed while fetching, the next loop re-seeks every wanted
            # partition from the hub's own position, and dispatch drops what it already has.
            for ktp, records in batches.items():
                self.batches += 1
                self.records += len(records)
                try:
                    self.hub.dispatch(
                        TP(ktp.topic, ktp.partition), [Record(r.offset, r.key, r.value) for r in records]
                    )
                except Exception:
                    # A bug in building one frame must not stop every socket of the process:
                    # the hub has moved past what it handled; the rest of the batch is skipped
                    # for live delivery (a reconnecting client gets it back by position).
                    log.exception("live dispatch failed on %s:%d", ktp.topic, ktp.partition)

    async def partition_count(self, topic: str) -> int:
        """The topic's partition count, from the broker (a metadata request)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=f"{self._client_id}-meta")
        count = 0
        try:
            async with asyncio.timeout(self._request_timeout):
                await admin.start()
                # A topic created a moment ago may not be in every broker's metadata yet.
                while True:
                    described = await admin.describe_topics([topic])
                    count = sum(
                        len(t["partitions"])
                        for t in described
                        if t["topic"] == topic and t["error_code"] == 0
                    )
                    if count:
                        return count
                    await asyncio.sleep(0.2)
        except TimeoutError as exc:
            raise Unavailable(f"topic {topic} does not exist") from exc
        except KafkaError as exc:
            raise Unavailable(f"cannot read the metadata of {topic}: {exc}") from exc
        finally:
            await admin.close()

    async def bounds(self, tp: TP) -> tuple[int, int]:
        """The partition's first retained offset and its end (the next offset to be written)."""
        assert self._replayer is not None
        ktp = TopicPartition(tp.topic, tp.partition)
        try:
            async with asyncio.timeout(self._request_timeout):
                first = await self._replayer.beginning_offsets([ktp])
                end = await self._replayer.end_offsets([ktp])
        except (TimeoutError, KafkaError) as exc:
            raise Unavailable(f"cannot read the offsets of {tp.topic}:{tp.partition}: {exc}") from exc
        return int(first[ktp]), int(end[ktp])

    async def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        """The end (the next offset to be written) of each partition, in one request."""
        assert self._replayer is not None
        ktps = {tp: TopicPartition(tp.topic, tp.partition) for tp in tps}
        if not ktps:
            return {}
        try:
            async with asyncio.timeout(self._request_timeout):
                ends = await self._replayer.end_offsets(list(ktps.values()))
        except (TimeoutError, KafkaError) as exc:
            raise Unavailable(f"cannot read the end offsets of {len(tps)} partitions: {exc}") from exc
        return {tp: int(ends[ktp]) for tp, ktp in ktps.items()}

    async def replay(self, tp: TP, key: bytes, start: int, stop: int) -> list[Record]:
        """`key`'s messages in [start, stop) of `tp`, read again from Kafka, in order."""
        return await self.replay_keys(tp, frozenset((key,)), start, stop)

    async def replay_keys(self, tp: TP, keys: frozenset[bytes], start: int, stop: int) -> list[Record]:
        """The messages of any of `keys` in [start, stop) of `tp`, read again, in order (one pass
        over the span whatever the number of keys)."""
        ktp = TopicPartition(tp.topic, tp.partition)
        out: list[Record] = []
        if start >= stop:
            return out
        deadline = time.monotonic() + self._request_timeout
        try:
            async with asyncio.timeout(self._request_timeout):
                consumer = await self._replay_pool.get()
        except TimeoutError as exc:
            raise Unavailable("no replay consumer became free in time") from exc
        try:
            self.replays += 1
            consumer.assign([ktp])
            consumer.seek(ktp, start)
            position = start
            while position < stop:
                if time.monotonic() > deadline:
                    raise Unavailable(f"replay of {tp.topic}:{tp.partition} [{start}, {stop}) timed out")
                try:
                    batch = await consumer.getmany(ktp, timeout_ms=500, max_records=self._max_poll_records)
                except KafkaError as exc:
                    raise Unavailable(f"replay of {tp.topic}:{tp.partition} failed: {exc}") from exc
                records = batch.get(ktp, [])
                if records:
                    deadline = time.monotonic() + self._request_timeout  # progress: extend
                for r in records:
                    if r.offset >= stop:
                        position = stop
                        break
                    position = r.offset + 1
                    if r.key in keys:
                        out.append(Record(r.offset, r.key, r.value))
                else:
                    if not records:
                        # Offsets can end in a gap (control records); the fetch position
                        # still moves past it.
                        position = max(position, await consumer.position(ktp))
        finally:
            self._replay_pool.put_nowait(consumer)
        return out
