"""The in-process hub: which sockets watch which server, fed by the process's one Kafka reader.

Per assigned topic partition the hub keeps a `PartitionStream`: the next offset it expects, a
bounded window of the most recent messages (so a new subscriber joins without reading Kafka
again), and the subscribers per server key. `dispatch` builds each message's frame once and pushes
the same text into every subscriber's bounded `Outbox`, never awaiting a socket.

Everything here is synchronous and runs on the event loop, so `subscribe` takes the window
snapshot and registers the subscriber atomically: the seam between catch-up and live is exact.

Besides per-server subscribers, a partition may be *held* (`hold`/`release`): read from the
live end while held, with no subscriber. The fleet sockets hold every partition of the metrics,
alerts and agent-events topics and see each fetched batch once through a *tap* (`set_tap`), one
call per batch, before and independently of the per-server delivery.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import ValidationError

from .channels import Channel
from .frames import VIRTUAL_INTERFACES, RateState
from .outbox import Outbox

log = logging.getLogger(__name__)


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    """The part of a Kafka record the hub needs (aiokafka's ConsumerRecord fits it)."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(eq=False, slots=True)
class Subscriber:
    channel: Channel
    tp: TP
    key: bytes
    outbox: Outbox
    start_offset: int  # live messages from this offset on go to the outbox


@dataclass(slots=True)
class Subscription:
    """What a new subscriber must send before its live outbox: a span to replay from Kafka
    (`replay`: [start, stop) offsets, or None) and then the window's messages (`backlog`)."""

    subscriber: Subscriber
    replay: tuple[int, int] | None
    backlog: list[Record]


@dataclass(slots=True)
class PartitionStream:
    tp: TP
    channel: Channel
    next_offset: int
    window: deque[Record]
    subscribers: dict[bytes, set[Subscriber]] = field(default_factory=dict)
    rates: dict[bytes, RateState] = field(default_factory=dict)
    holds: int = 0  # holders reading the whole partition (the fleet sockets), besides subscribers

    @property
    def window_start(self) -> int:
        """Every message from this offset up to `next_offset` is in the window."""
        return self.window[0].offset if self.window else self.next_offset


Tap = Callable[[TP, Sequence[Record]], None]
"""Sees every new record of a topic's held or subscribed partitions, a fetched batch at a time."""


class Hub:
    def __init__(
        self,
        window_messages: int,
        on_assignment_change: Callable[[], None],
        network_total_exclude: tuple[str, ...] = VIRTUAL_INTERFACES,
    ) -> None:
        self._window_messages = window_messages
        self._network_total_exclude = network_total_exclude
        self._on_change = on_assignment_change
        self._streams: dict[TP, PartitionStream] = {}
        self._taps: dict[str, Tap] = {}
        self.tap_failures = 0
        self.frames_built = 0
        self.frames_pushed = 0
        self.undecodable = 0

    # --- subscribers -----------------------------------------------------------------------

    def subscribe(
        self,
        channel: Channel,
        tp: TP,
        key: bytes,
        from_offset: int,
        outbox: Outbox,
        *,
        end: int | None = None,
    ) -> Subscription:
        """Subscribe to `key`'s messages on `tp` from `from_offset` on, exactly once each.

        `end` is the partition's end as last seen: a partition not read yet starts there (what
        lies before it is the subscriber's catch-up, sent by its session before anything live,
        and never coalesced); without it, the partition starts at `from_offset`.
        """
        stream = self._streams.get(tp)
        if stream is None:
            # First subscriber of this partition: the reader starts it at the live end.
            start = from_offset if end is None else max(from_offset, end)
            stream = PartitionStream(tp, channel, start, deque(maxlen=self._window_messages))
            self._streams[tp] = stream
            self._on_change()
        if stream.window.maxlen != self._window_messages:
            # A held partition's first subscriber: from now on the window keeps recent messages.
            stream.window = deque(stream.window, maxlen=self._window_messages)
        replay: tuple[int, int] | None = None
        window_start = stream.window_start
        if from_offset < window_start:
            replay = (from_offset, window_start)
        backlog = [r for r in stream.window if r.key == key and r.offset >= from_offset]
        sub = Subscriber(channel, tp, key, outbox, max(from_offset, stream.next_offset))
        subs = stream.subscribers.setdefault(key, set())
        if not subs:
            stream.rates[key] = RateState(exclude=self._network_total_exclude)
        subs.add(sub)
        return Subscription(sub, replay, backlog)

    def unsubscribe(self, sub: Subscriber) -> None:
        stream = self._streams.get(sub.tp)
        if stream is None:
            return
        subs = stream.subscribers.get(sub.key)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del stream.subscribers[sub.key]
            stream.rates.pop(sub.key, None)
        if not stream.subscribers and not stream.holds:
            # The last subscriber of the partition left: release it (the reader unassigns it).
            del self._streams[sub.tp]
            self._on_change()

    def hold(self, channel: Channel, tp: TP, end: int) -> None:
        """Read `tp` while held, from `end` (its live end) when nobody reads it yet.

        A partition read only for holders keeps no window (holders never join late): the window,
        with its memory, comes with the first per-server subscriber."""
        stream = self._streams.get(tp)
        if stream is None:
            stream = PartitionStream(tp, channel, end, deque(maxlen=0))
            self._streams[tp] = stream
            self._on_change()
        stream.holds += 1

    def release(self, tp: TP) -> None:
        stream = self._streams.get(tp)
        if stream is None or stream.holds == 0:
            return
        stream.holds -= 1
        if not stream.holds and not stream.subscribers:
            del self._streams[tp]
            self._on_change()

    def held(self, tp: TP) -> bool:
        stream = self._streams.get(tp)
        return stream is not None and stream.holds > 0

    def set_tap(self, topic: str, tap: Tap | None) -> None:
        if tap is None:
            self._taps.pop(topic, None)
        else:
            self._taps[topic] = tap

    def wanted(self) -> dict[TP, int]:
        """The partitions the reader should hold, each with the offset it should read next."""
        return {tp: s.next_offset for tp, s in self._streams.items()}

    def span(self, tp: TP) -> tuple[int, int] | None:
        """(window start, next offset) of a partition the hub reads, or None."""
        stream = self._streams.get(tp)
        return (stream.window_start, stream.next_offset) if stream else None

    def subscriber_count(self) -> int:
        return sum(len(subs) for s in self._streams.values() for subs in s.subscribers.values())

    def window_size(self, tp: TP) -> int:
        stream = self._streams.get(tp)
        return len(stream.window) if stream else 0

    # --- messages --------------------------------------------------------------------------

    def dispatch(self, tp: TP, records: Iterable[Record]) -> None:
        """Records of `tp` in offset order, as the reader fetched them."""
        stream = self._streams.get(tp)
        if stream is None:
            return  # released while the fetch was in flight
        tap = self._taps.get(tp.topic)
        fresh: list[Record] = []
        for record in records:
            if record.offset < stream.next_offset:
                continue  # already seen (a fetch that raced a re-seek)
            stream.next_offset = record.offset + 1
            stream.window.append(record)
            if tap is not None:
                fresh.append(record)
            key = record.key
            if key is None or record.value is None:
                continue
            subs = stream.subscribers.get(key)
            build = stream.channel.build
            if not subs or build is None:
                continue
            try:
                text = build(record.value, stream.rates[key], tp.partition, record.offset)
            except (ValidationError, ValueError, TypeError) as exc:  # orjson's errors are TypeErrors
                # Ingest only publishes validated payloads; the dead-letter path is the
                # processors'. A socket skips what it cannot show rather than dying on it.
                self.undecodable += 1
                log.warning("undecodable %s message at %s:%d: %s", tp.topic, tp.partition, record.offset, exc)
                continue
            self.frames_built += 1
            droppable = stream.channel.droppable
            for sub in list(subs):
                if record.offset >= sub.start_offset:
                    sub.outbox.push(text, droppable=droppable)
                    self.frames_pushed += 1
        if tap is not None and fresh:
            try:
                tap(tp, fresh)
            except Exception:
                # The fleet's bug must not stop the per-server sockets (they got this batch).
                self.tap_failures += 1
                log.exception("live tap failed on %s:%d", tp.topic, tp.partition)
