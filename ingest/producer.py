"""The process's one Kafka producer: idempotent, `acks=all`, keyed by server id.

`enqueue` hands a record to the producer's batching and returns at once with a `Delivery`, so a
socket can pipeline frames; `Delivery.wait` resolves when Kafka has the record on every in-sync
replica, which is the only moment an agent may be acknowledged. aiokafka's errors are translated
into `BrokerUnavailable` here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas import topics

from .errors import BrokerUnavailable
from .metrics import IngestMetrics


class Delivery:
    """The pending confirmation of one or more records (one agent frame)."""

    def __init__(
        self, futures: Sequence[asyncio.Future[object]], started: float, metrics: IngestMetrics
    ) -> None:
        self._futures = futures
        self._started = started
        self._metrics = metrics

    async def wait(self, within: float) -> None:
        if all(future.done() for future in self._futures):
            for future in self._futures:
                _raise_from(future)
            self._metrics.produce_seconds.observe(time.monotonic() - self._started)
            return
        try:
            async with asyncio.timeout(within):
                for future in self._futures:
                    await asyncio.shield(future)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"Kafka did not confirm within {within:g} s") from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka refused the record: {exc}") from exc
        self._metrics.produce_seconds.observe(time.monotonic() - self._started)

    def on_confirmed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once Kafka confirmed every record, even after a `wait` gave up (a
        record it timed out on may still be delivered); never if a record failed."""
        left = [len(self._futures)]

        def done(future: asyncio.Future[object]) -> None:
            if future.cancelled() or future.exception() is not None:
                left[0] = -1  # one failed: the frame is not (wholly) stored
                return
            if left[0] > 0:
                left[0] -= 1
                if left[0] == 0:
                    callback()

        for future in self._futures:
            future.add_done_callback(done)


class Producer:
    def __init__(
        self, bootstrap: str, *, linger_ms: int, request_timeout_ms: int, metrics: IngestMetrics
    ) -> None:
        self._metrics = metrics
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,  # retries never duplicate nor reorder within a partition
            acks="all",
            linger_ms=linger_ms,
            request_timeout_ms=request_timeout_ms,
            client_id="fleetpulse-ingest",
        )
        self._stopped = False
        # Kafka's default partition of (topic, key), computed once: aiokafka's murmur2 is pure
        # Python and would otherwise run for every frame. Same result as the default partitioner.
        self._partition_counts: dict[str, int] = {}
        self._partitions: dict[tuple[str, bytes], int] = {}

    def _partition(self, topic: str, key: bytes) -> int | None:
        count = self._partition_counts.get(topic)
        if count is None:
            return None  # not known yet: the default partitioner decides (the same way)
        partition = self._partitions.get((topic, key))
        if partition is None:
            if len(self._partitions) >= 200_000:
                self._partitions.clear()
            partition = self._partitions[(topic, key)] = topics.partition_for_key(key, count)
        return partition

    async def start(self) -> None:
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            await self.stop()
            raise BrokerUnavailable(f"cannot start the Kafka producer: {exc}") from exc

    async def stop(self) -> None:
        """Flush what is buffered and close; safe to call twice, and before `start`."""
        if not self._stopped:
            self._stopped = True
            await self._producer.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions (fetching its metadata); BrokerUnavailable if it is missing."""
        try:
            partitions = set(await self._producer.partitions_for(topic))
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"no metadata for topic {topic}: {exc}") from exc
        self._partition_counts[topic] = len(partitions)
        return partitions

    async def enqueue(self, records: Sequence[tuple[str, bytes, bytes]], within: float) -> Delivery:
        """Hand `(topic, key, value)` records to the producer and return without waiting for Kafka.

        Waiting for buffer space or for unknown topic metadata is bounded by aiokafka's own
        `request_timeout_ms`, which is set to the same produce timeout as `within` (no per-frame
        timer on the hot path)."""
        started = time.monotonic()
        futures: list[asyncio.Future[object]] = []
        try:
            for topic, key, value in records:
                future = await self._producer.send(
                    topic, value=value, key=key, partition=self._partition(topic, key)
                )
                future.add_done_callback(_retrieve)
                futures.append(future)
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka did not take the record within {within:g} s: {exc}") from exc
        return Delivery(futures, started, self._metrics)

    async def send(self, records: Sequence[tuple[str, bytes, bytes]], within: float) -> None:
        """Produce and wait for Kafka's confirmation (connection events, command results)."""
        started = time.monotonic()
        delivery = await self.enqueue(records, within)
        await delivery.wait(max(0.001, within - (time.monotonic() - started)))


def _retrieve(future: asyncio.Future[object]) -> None:
    # A frame given up on (timed out) may fail later: mark its error seen, it was already reported.
    if not future.cancelled():
        future.exception()


def _raise_from(future: asyncio.Future[object]) -> None:
    try:
        future.result()
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka refused the record: {exc}") from exc
