"""The fleet sockets' shared state: one `FleetHub` per API process, fed by the hub's taps.

While any fleet socket is open the process's one reader holds every partition of the metrics,
alerts and agent-events topics (`LiveService.fleet_subscribe`). Each fetched batch reaches
`FleetHub` once per topic; a message of a server nobody watches costs a dict lookup. A watched
server's message is decoded once and updates that server's one `FleetEntry`; every socket
following the server only marks it dirty in its own `FleetQueue`. A socket's sender later sends
one `fleet_update` with its dirty servers, each server's item text encoded once per change and
shared by every socket (so 10 browsers watching 1,000 servers cost one reader and one encoding
per change). Alert frames are built once per message and the same text goes to every socket of
the server's watchers.

Status, mirrored from the rules the persistence processor applies to `servers.status` (seeded
from the database when a server is first watched, then kept live from Kafka):
- a connection event of the connection that speaks for the server: `connected` -> online (stale
  when the server has not been heard from for `stale_after`), a `disconnected` that was not
  superseded by a newer socket -> offline;
- a sample moves a stale or unknown server to online, and `last_seen` forward;
- an online server not heard from for `stale_after` becomes stale (`sweep`, on a timer).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.canonical import AGENT_EVENT, METRIC_SAMPLE, AgentEvent, MetricSample
from schemas.topics import server_key

from .channels import Channels, alert_text
from .hub import TP, Record

log = logging.getLogger(__name__)

Status = str  # online | offline | stale | unknown (the servers.status column's values)


@dataclass(slots=True)
class FleetEntry:
    """One watched server's state, shared by every socket that follows it."""

    server_id: uuid.UUID
    status: Status = "unknown"
    last_seen: datetime | None = None
    sample_time: datetime | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    disk_mount: str | None = None
    # The connection that speaks for the server (server_presence), to apply disconnects exactly
    # as persistence does.
    connection_id: uuid.UUID | None = None
    presence_time: datetime | None = None
    connected: bool | None = None
    seeded: bool = False
    status_seen_live: bool = False  # a status change arrived from Kafka before the seed did
    _text: str | None = None

    def changed(self) -> None:
        self._text = None

    def item(self) -> dict[str, Any]:
        return {
            "server_id": str(self.server_id),
            "status": self.status,
            "last_seen": self.last_seen,
            "sample_time": self.sample_time,
            "cpu_percent": self.cpu_percent,
            "memory_percent": self.memory_percent,
            "disk_percent": self.disk_percent,
            "disk_mount": self.disk_mount,
        }

    def text(self) -> str:
        """The item's JSON, encoded once per change whatever the number of sockets."""
        if self._text is None:
            self._text = orjson.dumps(self.item(), option=orjson.OPT_UTC_Z).decode()
        return self._text


def update_text(entries: Iterable[FleetEntry]) -> str:
    """A `fleet_update` frame of these entries (schemas.frontend_wire.FleetUpdateFrame)."""
    return '{"type":"fleet_update","data":[' + ",".join(e.text() for e in entries) + "]}"


FLEET_CHANGED = '{"type":"fleet_changed"}'


class FleetQueue:
    """One fleet socket's bounded outgoing state: frames that must not be dropped (alerts,
    pongs, notices), at most `limit` of them (past it the socket is a slow consumer), and the set
    of servers changed since the last `fleet_update`, which coalesces per server and so never
    holds more than the servers the socket follows. Pushing never waits on the socket."""

    __slots__ = ("_on_overflow", "changed", "dirty", "frames", "limit", "overflowed")

    def __init__(self, limit: int, on_overflow: Callable[[], None]) -> None:
        self.limit = limit
        self.frames: deque[str] = deque()
        self.dirty: set[bytes] = set()
        self.changed = asyncio.Event()
        self.overflowed = False
        self._on_overflow = on_overflow

    def push(self, text: str) -> None:
        if self.overflowed:
            return
        if len(self.frames) >= self.limit:
            self.overflowed = True
            self.frames.clear()
            self._on_overflow()
            return
        self.frames.append(text)
        self.changed.set()

    def mark(self, key: bytes) -> None:
        self.dirty.add(key)
        if not self.changed.is_set():  # called per watcher and change: skip the wake-up work
            self.changed.set()

    def take_dirty(self) -> set[bytes]:
        dirty, self.dirty = self.dirty, set()
        return dirty


@dataclass(eq=False, slots=True)
class FleetSubscriber:
    queue: FleetQueue
    servers: dict[bytes, uuid.UUID] = field(default_factory=dict)  # followed: message key -> id


class FleetHub:
    def __init__(self, channels: Channels, *, stale_after: timedelta) -> None:
        self.channels = channels
        self.stale_after = stale_after
        self.entries: dict[bytes, FleetEntry] = {}
        self.watchers: dict[bytes, set[FleetSubscriber]] = {}
        self.subscribers: set[FleetSubscriber] = set()
        self.undecodable = 0
        self.updates = 0  # entry changes applied (observability and tests)

    # --- who follows what ------------------------------------------------------------------

    def add(self, sub: FleetSubscriber, server_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Follow these servers; returns those that have no entry yet (to be seeded)."""
        self.subscribers.add(sub)
        new: list[uuid.UUID] = []
        for server_id in server_ids:
            key = server_key(server_id)
            if key in sub.servers:
                continue
            sub.servers[key] = server_id
            self.watchers.setdefault(key, set()).add(sub)
            if key not in self.entries:
                self.entries[key] = FleetEntry(server_id)
                new.append(server_id)
        return new

    def drop(self, sub: FleetSubscriber, server_ids: Iterable[uuid.UUID] | None = None) -> None:
        """Stop following these servers (all of them by default); an entry nobody follows goes."""
        keys = set(sub.servers) if server_ids is None else {server_key(s) for s in server_ids}
        for key in keys:
            sub.servers.pop(key, None)
            sub.queue.dirty.discard(key)
            watchers = self.watchers.get(key)
            if watchers is not None:
                watchers.discard(sub)
                if not watchers:
                    del self.watchers[key]
                    self.entries.pop(key, None)
        if server_ids is None:
            self.subscribers.discard(sub)

    def snapshot(self, sub: FleetSubscriber) -> str:
        """A `fleet_update` with every server `sub` follows (its starting state)."""
        return update_text(self.entries[k] for k in sorted(sub.servers) if k in self.entries)

    def flush_text(self, sub: FleetSubscriber) -> str | None:
        """The `fleet_update` of `sub`'s dirty servers (None when none is left)."""
        keys = sub.queue.take_dirty()
        entries = [self.entries[k] for k in keys if k in self.entries]
        return update_text(entries) if entries else None

    def seed(self, rows: Sequence[dict[str, Any]]) -> None:
        """Database state of newly watched servers, merged under what Kafka already brought."""
        for row in rows:
            entry = self.entries.get(server_key(row["server_id"]))
            if entry is None or entry.seeded:
                continue
            entry.seeded = True
            entry.last_seen = _later(entry.last_seen, row["last_seen"])
            if not entry.status_seen_live:
                entry.status = row["status"]
            if entry.presence_time is None and row["presence_time"] is not None:
                entry.connection_id = row["connection_id"]
                entry.presence_time = row["presence_time"]
                entry.connected = row["connected"]
            if row["sample_time"] is not None and (
                entry.sample_time is None or row["sample_time"] > entry.sample_time
            ):
                entry.sample_time = row["sample_time"]
                entry.cpu_percent = row["cpu_percent"]
                entry.memory_percent = row["memory_percent"]
                entry.disk_percent = row["disk_percent"]
                entry.disk_mount = row["disk_mount"]
            self._changed(server_key(entry.server_id), entry)

    # --- messages (the hub's taps) ---------------------------------------------------------

    def on_metrics(self, tp: TP, records: Sequence[Record]) -> None:
        now = datetime.now(UTC)
        for record in records:
            entry = self._watched(record)
            if entry is None or record.value is None:
                continue
            try:
                sample = METRIC_SAMPLE.validate_json(record.value)
            except ValidationError as exc:
                self._undecodable(tp, record, exc)
                continue
            self._apply_sample(entry, sample, now)
            self._changed(record.key or b"", entry)

    def on_alerts(self, tp: TP, records: Sequence[Record]) -> None:
        for record in records:
            if record.key is None or record.value is None or record.key not in self.watchers:
                continue
            try:
                text = alert_text(record.value, tp.partition, record.offset)
            except (ValidationError, ValueError, TypeError) as exc:
                self._undecodable(tp, record, exc)
                continue
            for sub in list(self.watchers.get(record.key, ())):
                sub.queue.push(text)

    def on_agent_events(self, tp: TP, records: Sequence[Record]) -> None:
        now = datetime.now(UTC)
        for record in records:
            entry = self._watched(record)
            if entry is None or record.value is None:
                continue
            try:
                event = AGENT_EVENT.validate_json(record.value)
            except ValidationError as exc:
                self._undecodable(tp, record, exc)
                continue
            if self._apply_event(entry, event, now):
                self._changed(record.key or b"", entry)

    def sweep(self, now: datetime | None = None) -> int:
        """Online servers not heard from for `stale_after` become stale; returns how many."""
        cutoff = (now or datetime.now(UTC)) - self.stale_after
        marked = 0
        for key, entry in self.entries.items():
            if entry.status == "online" and entry.last_seen is not None and entry.last_seen < cutoff:
                entry.status = "stale"
                self._changed(key, entry)
                marked += 1
        return marked

    # --- the rules ---------------------------------------------------------------------------

    def _apply_sample(self, entry: FleetEntry, sample: MetricSample, now: datetime) -> None:
        # Persistence: last_seen = max(last_seen, received_at); a stale or unknown server heard
        # from recently is online again (an offline one waits for its connect event).
        entry.last_seen = _later(entry.last_seen, sample.received_at)
        if entry.status in ("stale", "unknown") and sample.received_at > now - self.stale_after:
            entry.status = "online"
            entry.status_seen_live = True
        if entry.sample_time is None or sample.time >= entry.sample_time:
            entry.sample_time = sample.time
            entry.cpu_percent = sample.cpu_percent
            entry.memory_percent = sample.memory_percent
            # The fullest disk; on a tie the first mount by name, as GET /fleet orders them.
            fullest = min(sample.disks, key=lambda d: (-d.percent, d.mount), default=None)
            entry.disk_percent = None if fullest is None else fullest.percent
            entry.disk_mount = None if fullest is None else fullest.mount

    def _apply_event(self, entry: FleetEntry, event: AgentEvent, now: datetime) -> bool:
        # Persistence's server_presence: a connect takes over unless older than what is known; a
        # disconnect counts only for the connection that speaks for the server, never when
        # superseded. Then status from presence, last_seen from the presence time.
        if event.event == "auth_failed" or (event.event == "disconnected" and event.superseded):
            return False
        newer = entry.presence_time is None or entry.presence_time <= event.time
        connected = event.event == "connected"
        same = (
            connected
            or entry.connection_id is None
            or event.connection_id is None
            or entry.connection_id == event.connection_id
        )
        if not (newer and same):
            return False
        entry.connection_id = event.connection_id
        entry.presence_time = event.time
        entry.connected = connected
        last_seen = max(entry.last_seen or event.time, event.time)
        entry.last_seen = last_seen
        if not connected:
            entry.status = "offline"
        elif last_seen < now - self.stale_after:
            entry.status = "stale"
        else:
            entry.status = "online"
        entry.status_seen_live = True
        return True

    def _watched(self, record: Record) -> FleetEntry | None:
        if record.key is None or record.key not in self.watchers:
            return None
        return self.entries.get(record.key)

    def _changed(self, key: bytes, entry: FleetEntry) -> None:
        entry.changed()
        self.updates += 1
        for sub in self.watchers.get(key, ()):
            sub.queue.mark(key)

    def _undecodable(self, tp: TP, record: Record, exc: Exception) -> None:
        self.undecodable += 1
        log.warning("fleet: undecodable %s message at %d:%d: %s", tp.topic, tp.partition, record.offset, exc)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
