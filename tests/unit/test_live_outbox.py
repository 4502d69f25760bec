"""The per-socket outbox: bounded, never waits on the socket; metrics coalesce, logs overflow."""

from __future__ import annotations

import asyncio

from api.live.outbox import Outbox


async def test_coalesce_keeps_the_newest_and_counts_what_it_dropped() -> None:
    overflowed: list[bool] = []
    box = Outbox(3, "coalesce", lambda: overflowed.append(True))
    box.push("alert", droppable=False)
    for n in range(10):
        box.push(f"m{n}", droppable=True)
    # Full at 3: each overflow drops the pending metrics frames, never the alert.
    got = [await box.get() for _ in range(len(box))]
    assert [t for t, _ in got] == ["alert", "m8", "m9"]
    assert sum(s for _, s in got) == 8  # every metric delivered or counted as skipped
    assert not overflowed and not box.overflowed


async def test_coalesce_overflows_when_only_undroppable_frames_fill_it() -> None:
    overflowed: list[bool] = []
    box = Outbox(2, "coalesce", lambda: overflowed.append(True))
    for n in range(3):
        box.push(f"alert{n}", droppable=False)
    assert box.overflowed and overflowed == [True]


async def test_close_policy_signals_overflow_and_drops_nothing_silently() -> None:
    overflowed: list[bool] = []
    box = Outbox(2, "close", lambda: overflowed.append(True))
    box.push("l0", droppable=False)
    box.push("l1", droppable=False)
    assert not box.overflowed
    box.push("l2", droppable=False)
    assert box.overflowed and overflowed == [True]
    box.push("l3", droppable=False)  # ignored after the overflow: the session is closing
    assert overflowed == [True]


async def test_get_waits_for_a_frame() -> None:
    box = Outbox(4, "close", lambda: None)
    waiter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.push("x", droppable=False)
    assert await asyncio.wait_for(waiter, 5) == ("x", 0)
