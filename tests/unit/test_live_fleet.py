"""The fleet hub with fakes: status rules as persistence applies them, coalescing per server,
one encoding per change shared by every socket, bounded queues, and partitions held by the hub
with a tap that sees each batch once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.live.channels import Channels
from api.live.fleet import FleetHub, FleetQueue, FleetSubscriber
from api.live.hub import TP, Hub, Record
from api.live.outbox import Outbox
from schemas.alerts import AlertEvent
from schemas.canonical import AgentEvent, DiskSample, MetricSample
from schemas.frontend_wire import SERVER_FRAME, AlertFrame, FleetUpdateFrame
from schemas.topics import server_key

CHANNELS = Channels.for_prefix("t.")
METRICS = TP(CHANNELS.metrics.topic, 0)
EVENTS = TP(CHANNELS.agent_events.topic, 0)
ALERTS = TP(CHANNELS.alerts.topic, 0)
A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))


def _sub(limit: int = 100) -> tuple[FleetSubscriber, list[bool]]:
    overflowed: list[bool] = []
    return FleetSubscriber(FleetQueue(limit, lambda: overflowed.append(True))), overflowed


def _sample(
    server: uuid.UUID, cpu: float, at: datetime | None = None, disks: tuple[DiskSample, ...] = ()
) -> bytes:
    t = at or datetime.now(UTC)
    return MetricSample(
        server_id=server, time=t, received_at=t, cpu_percent=cpu, memory_percent=50, disks=disks
    ).to_bytes()


def _event(server: uuid.UUID, kind: str, conn: uuid.UUID, at: datetime, superseded: bool = False) -> bytes:
    return AgentEvent(
        server_id=server,
        event=kind,
        time=at,
        connection_id=conn,
        superseded=superseded,
    ).to_bytes()


def _records(server: uuid.UUID, values: list[bytes], start: int = 0) -> list[Record]:
    return [Record(start + i, server_key(server), v) for i, v in enumerate(values)]


def _updates(fleet: FleetHub, sub: FleetSubscriber) -> dict[uuid.UUID, object]:
    text = fleet.flush_text(sub)
    if text is None:
        return {}
    frame = SERVER_FRAME.validate_json(text)
    assert isinstance(frame, FleetUpdateFrame)
    return {item.server_id: item for item in frame.data}


def _fleet() -> FleetHub:
    return FleetHub(CHANNELS, stale_after=timedelta(seconds=60))


def test_samples_coalesce_per_server_with_the_newest_values_and_the_fullest_disk() -> None:
    fleet = _fleet()
    sub, _ = _sub()
    assert fleet.add(sub, [A, B]) == [A, B]
    disks = (
        DiskSample(mount="/", total_bytes=10, used_bytes=5, free_bytes=5, percent=50.0),
        DiskSample(mount="/var", total_bytes=10, used_bytes=9, free_bytes=1, percent=90.0),
    )
    now = datetime.now(UTC)
    values = [_sample(A, float(i), now + timedelta(seconds=i)) for i in range(10)]
    values.append(_sample(A, 99.0, now - timedelta(minutes=1)))  # a late older sample
    values.append(_sample(A, 9.0, now + timedelta(seconds=9), disks))
    fleet.on_metrics(METRICS, _records(A, values))
    fleet.on_metrics(METRICS, _records(C, [_sample(C, 1.0)], 100))  # nobody follows C
    assert sub.queue.dirty == {server_key(A)}
    items = _updates(fleet, sub)
    assert list(items) == [A]  # once, however many samples came
    item = items[A]
    assert item.cpu_percent == 9.0 and item.status == "online"  # type: ignore[attr-defined]
    assert (item.disk_mount, item.disk_percent) == ("/var", 90.0)  # type: ignore[attr-defined]
    assert fleet.flush_text(sub) is None  # nothing changed since
    assert server_key(C) not in fleet.entries


def test_one_encoding_per_change_shared_by_every_socket() -> None:
    fleet = _fleet()
    subs = [_sub()[0] for _ in range(10)]
    for sub in subs:
        fleet.add(sub, [A])
    fleet.on_metrics(METRICS, _records(A, [_sample(A, 5.0)]))
    texts = [fleet.flush_text(sub) for sub in subs]
    assert len(set(texts)) == 1 and fleet.updates == 1
    entry = fleet.entries[server_key(A)]
    assert entry.text() is entry.text()  # cached until the next change


def test_status_follows_the_persistence_rules() -> None:
    fleet = _fleet()
    sub, _ = _sub()
    fleet.add(sub, [A])
    now = datetime.now(UTC)
    first, second = uuid.uuid4(), uuid.uuid4()

    def status() -> str:
        return fleet.entries[server_key(A)].status

    fleet.on_agent_events(EVENTS, _records(A, [_event(A, "connected", first, now)]))
    assert status() == "online"
    # A newer socket takes over; the old one's disconnect (superseded or not) changes nothing.
    fleet.on_agent_events(
        EVENTS, _records(A, [_event(A, "connected", second, now + timedelta(seconds=1))], 1)
    )
    fleet.on_agent_events(
        EVENTS,
        _records(A, [_event(A, "disconnected", first, now + timedelta(seconds=2), superseded=True)], 2),
    )
    fleet.on_agent_events(
        EVENTS, _records(A, [_event(A, "disconnected", first, now + timedelta(seconds=3))], 3)
    )
    assert status() == "online"
    fleet.on_agent_events(
        EVENTS, _records(A, [_event(A, "disconnected", second, now + timedelta(seconds=4))], 4)
    )
    assert status() == "offline"
    # A sample does not bring an offline server back (its connect event does).
    fleet.on_metrics(METRICS, _records(A, [_sample(A, 1.0)], 5))
    assert status() == "offline"
    # An event older than the presence known is ignored.
    fleet.on_agent_events(EVENTS, _records(A, [_event(A, "connected", first, now)], 6))
    assert status() == "offline"
    fleet.on_agent_events(EVENTS, _records(A, [_event(A, "connected", first, now + timedelta(seconds=5))], 7))
    assert status() == "online"
    # Silence past stale_after: stale; then a sample makes it online again.
    assert fleet.sweep(datetime.now(UTC) + timedelta(minutes=2)) == 1 and status() == "stale"
    assert fleet.sweep(datetime.now(UTC) + timedelta(minutes=2)) == 0
    fleet.on_metrics(METRICS, _records(A, [_sample(A, 1.0)], 8))
    assert status() == "online"
    # A connect long after the last sign of life is stale at once.
    old = datetime.now(UTC) - timedelta(minutes=5)
    fleet2 = _fleet()
    fleet2.add(sub, [B])
    fleet2.on_agent_events(EVENTS, _records(B, [_event(B, "connected", first, old)]))
    assert fleet2.entries[server_key(B)].status == "stale"


def test_the_database_seed_never_overrides_what_kafka_brought() -> None:
    fleet = _fleet()
    sub, _ = _sub()
    fleet.add(sub, [A, B])
    now = datetime.now(UTC)
    fleet.on_agent_events(EVENTS, _records(A, [_event(A, "disconnected", uuid.uuid4(), now)]))
    fleet.on_metrics(METRICS, _records(A, [_sample(A, 7.0, now)]))
    row = {
        "status": "online",
        "last_seen": now - timedelta(minutes=1),
        "connection_id": None,
        "connected": True,
        "presence_time": now - timedelta(minutes=1),
        "sample_time": now - timedelta(minutes=1),
        "cpu_percent": 1.0,
        "memory_percent": 2.0,
        "disk_percent": None,
        "disk_mount": None,
    }
    fleet.seed([{**row, "server_id": A}, {**row, "server_id": B}])
    a, b = fleet.entries[server_key(A)], fleet.entries[server_key(B)]
    assert (a.status, a.cpu_percent, a.last_seen) == ("offline", 7.0, now)
    assert (b.status, b.cpu_percent, b.sample_time) == ("online", 1.0, now - timedelta(minutes=1))


def test_alerts_go_to_the_watchers_of_the_server_only() -> None:
    fleet = _fleet()
    mine, _ = _sub()
    other, _ = _sub()
    fleet.add(mine, [A])
    fleet.add(other, [B])
    event = AlertEvent(
        event_id=uuid.uuid4(),
        episode_id=uuid.uuid4(),
        state="firing",
        rule_id=uuid.uuid4(),
        rule_name="cpu",
        server_id=A,
        metric="cpu",
        severity="critical",
        comparison="gt",
        threshold=90,
        value=95,
        started_at=datetime.now(UTC),
        time=datetime.now(UTC),
        message="hot",
    )
    fleet.on_alerts(ALERTS, [Record(41, server_key(A), event.to_bytes())])
    assert not other.queue.frames and len(mine.queue.frames) == 1
    frame = SERVER_FRAME.validate_json(mine.queue.frames[0])
    assert isinstance(frame, AlertFrame) and frame.data.event_id == event.event_id
    assert frame.position.offset == 41


def test_a_socket_queue_is_bounded_and_its_dirty_set_never_outgrows_its_servers() -> None:
    fleet = _fleet()
    sub, overflowed = _sub(limit=3)
    fleet.add(sub, [A, B])
    for i in range(1000):
        fleet.on_metrics(METRICS, _records(A if i % 2 else B, [_sample(A if i % 2 else B, 1.0)], i))
    assert len(sub.queue.dirty) == 2
    for text in ("a", "b", "c"):
        sub.queue.push(text)
    assert not overflowed
    sub.queue.push("d")
    assert overflowed == [True] and not sub.queue.frames
    sub.queue.push("e")  # an overflowed queue takes nothing more
    assert not sub.queue.frames


def test_following_and_unfollowing() -> None:
    fleet = _fleet()
    one, _ = _sub()
    two, _ = _sub()
    assert fleet.add(one, [A, B]) == [A, B]
    assert fleet.add(two, [B, C]) == [C]  # B is already watched
    snapshot = SERVER_FRAME.validate_json(fleet.snapshot(two))
    assert isinstance(snapshot, FleetUpdateFrame) and {i.server_id for i in snapshot.data} == {B, C}
    fleet.drop(one, [B])
    assert server_key(B) in fleet.entries  # two still follows B
    fleet.drop(one)
    assert server_key(A) not in fleet.entries and one not in fleet.subscribers
    fleet.drop(two)
    assert fleet.entries == {} and fleet.watchers == {}


def test_held_partitions_are_read_without_subscribers_and_tapped_once_per_batch() -> None:
    changes: list[int] = []
    hub = Hub(100, lambda: changes.append(1))
    seen: list[list[int]] = []
    hub.set_tap(METRICS.topic, lambda tp, records: seen.append([r.offset for r in records]))
    hub.hold(CHANNELS.metrics, METRICS, 10)
    assert hub.wanted() == {METRICS: 10} and changes == [1]
    hub.dispatch(METRICS, [Record(i, b"k", b"v") for i in range(8, 13)])
    assert seen == [[10, 11, 12]]  # older than the hold's start: not again
    assert hub.window_size(METRICS) == 0  # a held-only partition keeps no window
    # A per-server subscriber on the held partition gets the window from then on.
    outbox = Outbox(10, "coalesce", lambda: None)
    sub = hub.subscribe(CHANNELS.metrics, METRICS, b"k", 13, outbox).subscriber
    hub.dispatch(METRICS, [Record(13, b"x", b"not json")])
    assert hub.window_size(METRICS) == 1 and seen[-1] == [13]
    hub.unsubscribe(sub)
    assert hub.held(METRICS)  # still held
    hub.release(METRICS)
    assert hub.wanted() == {} and not hub.held(METRICS)
    hub.release(METRICS)  # twice is harmless


def test_a_failing_tap_does_not_stop_per_server_delivery() -> None:
    hub = Hub(100, lambda: None)

    def broken(tp: TP, records: object) -> None:
        raise RuntimeError("bug")

    hub.set_tap(METRICS.topic, broken)
    outbox = Outbox(10, "coalesce", lambda: None)
    hub.subscribe(CHANNELS.metrics, METRICS, server_key(A), 0, outbox)
    hub.dispatch(METRICS, _records(A, [_sample(A, 3.0)]))
    assert len(outbox) == 1 and hub.tap_failures == 1


async def test_the_queue_wakes_its_sender() -> None:
    sub, _ = _sub()
    waiter = asyncio.create_task(sub.queue.changed.wait())
    await asyncio.sleep(0)
    sub.queue.mark(b"k")
    await asyncio.wait_for(waiter, 1)
    assert sub.queue.take_dirty() == {b"k"} and sub.queue.dirty == set()


@pytest.mark.parametrize("kind", ["auth_failed"])
def test_events_that_do_not_speak_for_presence_change_nothing(kind: str) -> None:
    fleet = _fleet()
    sub, _ = _sub()
    fleet.add(sub, [A])
    fleet.on_agent_events(EVENTS, _records(A, [_event(A, kind, uuid.uuid4(), datetime.now(UTC))]))
    assert fleet.entries[server_key(A)].status == "unknown" and not sub.queue.dirty
