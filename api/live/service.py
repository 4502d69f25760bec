"""`LiveService`: what the API's lifespan opens for the live sockets (the reader and its hub).

Kafka may be down when the API starts: REST must still serve, so the reader is started in the
background, retried with a capped backoff, and sockets answer "unavailable, reconnect" until it
runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from types import TracebackType

from schemas.topics import partition_for_key

from .channels import Channels
from .errors import Unavailable
from .hub import TP, Hub
from .reader import KafkaReader
from .settings import LiveSettings

log = logging.getLogger(__name__)


class LiveService:
    def __init__(self, settings: LiveSettings, bootstrap: str, topic_prefix: str) -> None:
        self.settings = settings
        self.channels = Channels.for_prefix(topic_prefix)
        self.reader = KafkaReader(
            bootstrap,
            window_messages=settings.window_messages,
            poll_timeout_ms=settings.poll_timeout_ms,
            max_poll_records=settings.max_poll_records,
            replay_consumers=settings.replay_consumers,
            request_timeout_seconds=settings.kafka_timeout_seconds,
            network_total_exclude=settings.network_total_exclude,
        )
        self._partitions: dict[str, int] = {}
        self.closes: Counter[int] = Counter()  # sockets closed by the server, per close code
        self._starter: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def hub(self) -> Hub:
        return self.reader.hub

    async def start(self) -> None:
        if self._starter is None:
            self._starter = asyncio.create_task(self._start_reader(), name="live-reader-start")

    async def _start_reader(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.reader.start()
            except Unavailable as exc:
                log.warning("live reader cannot start yet (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._ready.set()
            return

    async def wait_ready(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError as exc:
            raise Unavailable("the live reader is not connected to Kafka yet") from exc

    async def stop(self) -> None:
        """Safe to call twice."""
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
        await self.reader.stop()
        self._ready.clear()

    async def __aenter__(self) -> LiveService:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def partition_of(self, topic: str, key: bytes) -> TP:
        """The partition holding `key`'s messages, from the topic's real partition count (the
        producers' default partitioner uses the broker's count, not a setting)."""
        count = self._partitions.get(topic)
        if count is None:
            count = await self.reader.partition_count(topic)
            self._partitions[topic] = count
        return TP(topic, partition_for_key(key, count))
