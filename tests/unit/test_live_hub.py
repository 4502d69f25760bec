"""The hub without Kafka: window, replay spans, the exact seam, once-per-message encoding, release."""

from __future__ import annotations

import uuid

from api.live.channels import Channels
from api.live.hub import TP, Hub, Record
from api.live.outbox import Outbox
from schemas.topics import server_key
from tests.support.live_harness import sample

CH = Channels.for_prefix("unit.")
TPX = TP(CH.metrics.topic, 0)
A = uuid.uuid4()
B = uuid.uuid4()
KA, KB = server_key(A), server_key(B)


def _rec(offset: int, sid: uuid.UUID, n: int) -> Record:
    return Record(offset, server_key(sid), sample(sid, n).to_bytes())


def _hub(window: int = 5) -> tuple[Hub, list[int]]:
    changes: list[int] = []
    return Hub(window, lambda: changes.append(1)), changes


def _box() -> Outbox:
    return Outbox(1000, "close", lambda: None)


def test_first_subscriber_starts_the_partition_at_the_live_end_and_replays_before_it() -> None:
    hub, changes = _hub()
    sub = hub.subscribe(CH.metrics, TPX, KA, 10, _box(), end=15)
    assert changes == [1] and hub.wanted() == {TPX: 15}
    assert sub.replay == (10, 15) and sub.backlog == []


def test_window_serves_a_later_subscriber_and_the_seam_is_exact() -> None:
    hub, _ = _hub(window=5)
    first = _box()
    hub.subscribe(CH.metrics, TPX, KA, 0, first, end=0)
    hub.dispatch(TPX, [_rec(o, A if o % 2 == 0 else B, o) for o in range(8)])
    assert hub.wanted() == {TPX: 8}
    # The window holds offsets 3..7: a subscriber from 4 gets A's 4 and 6 from it, live after 7.
    second = _box()
    sub = hub.subscribe(CH.metrics, TPX, KA, 4, second, end=8)
    assert sub.replay is None and [r.offset for r in sub.backlog] == [4, 6]
    # One from 1 needs 1..2 replayed from Kafka, then A's part of the window (4, 6).
    sub = hub.subscribe(CH.metrics, TPX, KA, 1, _box(), end=8)
    assert sub.replay == (1, 3) and [r.offset for r in sub.backlog] == [4, 6]
    hub.dispatch(TPX, [_rec(8, A, 8), _rec(9, B, 9)])
    assert len(second) == 1  # only offset 8 went live to the second subscriber
    assert len(first) == 4 + 1  # 0, 2, 4, 6 and then 8


def test_each_message_is_built_once_however_many_subscribers_and_duplicates_are_dropped() -> None:
    hub, _ = _hub()
    boxes = [_box() for _ in range(50)]
    for box in boxes:
        hub.subscribe(CH.metrics, TPX, KA, 0, box, end=0)
    hub.dispatch(TPX, [_rec(0, A, 0), _rec(1, A, 1)])
    hub.dispatch(TPX, [_rec(1, A, 1)])  # a fetch that raced a re-seek: already seen
    assert hub.frames_built == 2 and hub.frames_pushed == 100
    assert all(len(b) == 2 for b in boxes)


def test_the_last_unsubscribe_releases_the_partition() -> None:
    hub, changes = _hub()
    s1 = hub.subscribe(CH.metrics, TPX, KA, 0, _box(), end=0).subscriber
    s2 = hub.subscribe(CH.metrics, TPX, KB, 0, _box(), end=0).subscriber
    hub.unsubscribe(s1)
    assert hub.wanted() == {TPX: 0}
    hub.unsubscribe(s2)
    hub.unsubscribe(s2)  # twice is harmless
    assert hub.wanted() == {} and changes == [1, 1]


def test_an_undecodable_message_is_skipped_not_fatal() -> None:
    hub, _ = _hub()
    box = _box()
    hub.subscribe(CH.metrics, TPX, KA, 0, box, end=0)
    hub.dispatch(TPX, [Record(0, KA, b"{not json"), _rec(1, A, 1)])
    assert hub.undecodable == 1 and len(box) == 1
