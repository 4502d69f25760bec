"""`LiveService`: what the API's lifespan opens for the live sockets (the reader and its hub).

Kafka may be down when the API starts: REST must still serve, so the reader is started in the
background, retried with a capped backoff, and sockets answer "unavailable, reconnect" until it
runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from datetime import timedelta
from types import TracebackType

from api.db.pool import Pool
from schemas.topics import partition_for_key, server_key

from . import db
from .channels import Channel, Channels
from .errors import Unavailable
from .fleet import FleetHub, FleetSubscriber
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
        # The fleet sockets: one FleetHub fed by taps on every partition of three topics, held
        # while at least one fleet socket is open.
        self.fleet = FleetHub(
            self.channels, stale_after=timedelta(seconds=settings.fleet_stale_after_seconds)
        )
        self._fleet_lock = asyncio.Lock()
        self._fleet_held: list[TP] = []
        self._fleet_sweeper: asyncio.Task[None] | None = None

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
        self._fleet_release()
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
        return TP(topic, partition_for_key(key, await self.partition_count(topic)))

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = await self.reader.partition_count(topic)
            self._partitions[topic] = count
        return count

    # --- the fleet sockets ---------------------------------------------------------------------

    async def fleet_subscribe(self, sub: FleetSubscriber, pool: Pool, server_ids: list[uuid.UUID]) -> None:
        """Follow `server_ids` for `sub`: the first fleet socket makes the reader hold every
        partition of the metrics, alerts and agent-events topics (from their live ends); servers
        nobody watched yet are seeded from the database."""
        async with self._fleet_lock:
            if not self._fleet_held:
                await self._fleet_hold()
            new = self.fleet.add(sub, server_ids)
        await self._fleet_seed(pool, new)

    async def fleet_update(self, sub: FleetSubscriber, pool: Pool, server_ids: list[uuid.UUID]) -> bool:
        """Follow exactly `server_ids` now; True when the set changed."""
        current, wanted = set(sub.servers.values()), set(server_ids)
        if current == wanted:
            return False
        self.fleet.drop(sub, current - wanted)
        await self._fleet_seed(pool, self.fleet.add(sub, sorted(wanted - current)))
        return True

    async def _fleet_seed(self, pool: Pool, new: list[uuid.UUID]) -> None:
        """Seed newly watched servers from the database, then apply the agent events Kafka holds
        past what that database state covers.

        The hub reads agent events from its own position on (the live end, when the first fleet
        socket came); the database holds them up to what persistence has stored. An event between
        the two, such as the disconnect of a just revoked key that persistence has not written
        yet, was in neither: the server kept its old status until its next event, which for a
        revoked key never comes. So the new servers' partitions are read again from the seed's
        persisted offset + 1 up to the hub's position, in the seed's snapshot, and their events
        applied by the same rules. An event older than the presence already known is ignored,
        so an overlap with what the hub dispatches live meanwhile changes nothing."""
        if not new:
            return
        topic = self.channels.agent_events.topic
        count = await self.partition_count(topic)
        keys: dict[int, set[bytes]] = {}
        for server_id in new:
            key = server_key(server_id)
            keys.setdefault(partition_for_key(key, count), set()).add(key)
        seed = await db.fleet_seed(pool, new, topic, sorted(keys))
        self.fleet.seed(seed.rows)
        for partition, wanted in sorted(keys.items()):
            tp = TP(topic, partition)
            span = self.hub.span(tp)
            if span is None:
                continue  # released meanwhile: the last fleet socket went
            stop = span[1]
            last = seed.events_persisted.get(partition)
            start = 0 if last is None else last + 1
            if stop - start > self.settings.max_catchup_messages:
                log.warning(
                    "fleet seed: %s:%d is %d events behind persistence; replaying the newest %d",
                    topic,
                    partition,
                    stop - start,
                    self.settings.max_catchup_messages,
                )
                start = stop - self.settings.max_catchup_messages
            if start < stop:
                events = await self.reader.replay_keys(tp, frozenset(wanted), start, stop)
                self.fleet.on_agent_events(tp, events)

    def fleet_unsubscribe(self, sub: FleetSubscriber) -> None:
        self.fleet.drop(sub)
        if not self.fleet.subscribers and not self._fleet_lock.locked():
            self._fleet_release()

    async def _fleet_hold(self) -> None:
        tps: list[tuple[Channel, TP]] = []
        for channel in self.channels.fleet():
            count = await self.partition_count(channel.topic)
            tps += [(channel, TP(channel.topic, p)) for p in range(count)]
        ends = await self.reader.end_offsets([tp for _, tp in tps if self.hub.span(tp) is None])
        taps = {
            self.channels.metrics.topic: self.fleet.on_metrics,
            self.channels.alerts.topic: self.fleet.on_alerts,
            self.channels.agent_events.topic: self.fleet.on_agent_events,
        }
        for topic, tap in taps.items():
            self.hub.set_tap(topic, tap)
        for channel, tp in tps:
            span = self.hub.span(tp)
            self.hub.hold(channel, tp, span[1] if span else ends[tp])
        self._fleet_held = [tp for _, tp in tps]
        self._fleet_sweeper = asyncio.create_task(self._fleet_sweep(), name="live-fleet-stale")

    def _fleet_release(self) -> None:
        for tp in self._fleet_held:
            self.hub.release(tp)
        if self._fleet_held:
            for channel in self.channels.fleet():
                self.hub.set_tap(channel.topic, None)
        self._fleet_held = []
        if self._fleet_sweeper is not None:
            self._fleet_sweeper.cancel()
            self._fleet_sweeper = None

    async def _fleet_sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.fleet_stale_check_seconds)
            self.fleet.sweep()
