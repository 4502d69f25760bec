"""The process's one Kafka producer: idempotent, `acks=all`, keyed by server id.

`enqueue` hands a record to the producer's batching and returns at once with a `Delivery`, so a
socket can pipeline frames; `Delivery.wait` resolves when Kafka has the record on every in-sync
replica, which is the only moment an agent may be acknowledged. aiokafka's errors are translated
into `BrokerUnavailable` here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

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
        try:
            async with asyncio.timeout(within):
                for future in self._futures:
                    await asyncio.shield(future)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"Kafka did not confirm within {within:g} s") from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka refused the record: {exc}") from exc
        self._metrics.produce_seconds.observe(time.monotonic() - self._started)


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
        self._started = False

    async def start(self) -> None:
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            await self._producer.stop()
            raise BrokerUnavailable(f"cannot start the Kafka producer: {exc}") from exc
        self._started = True

    async def stop(self) -> None:
        """Flush what is buffered and close; safe to call twice."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions (fetching its metadata); BrokerUnavailable if it is missing."""
        try:
            return set(await self._producer.partitions_for(topic))
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"no metadata for topic {topic}: {exc}") from exc

    async def enqueue(self, records: Sequence[tuple[str, bytes, bytes]], within: float) -> Delivery:
        """Hand `(topic, key, value)` records to the producer; bounded by `within` seconds when the
        producer's buffer is full or the topic's metadata is unknown."""
        started = time.monotonic()
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(within):
                for topic, key, value in records:
                    future = await self._producer.send(topic, value=value, key=key)
                    future.add_done_callback(_retrieve)
                    futures.append(future)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"Kafka did not take the record within {within:g} s") from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka refused the record: {exc}") from exc
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
