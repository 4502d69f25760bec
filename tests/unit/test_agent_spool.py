"""The agent's spool: seq numbers, acks, durability across a restart, bounded with counted drops."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fleetpulse_agent.spool import DiskSpool, MemorySpool, Spool


def frame(seq: int) -> bytes:
    return f'{{"seq":{seq}}}'.encode()


async def make(kind: str, tmp_path: Path, max_frames: int = 100) -> Spool:
    if kind == "disk":
        return await DiskSpool.open(tmp_path / "spool.sqlite3", max_frames)
    return MemorySpool(max_frames)


@pytest.mark.parametrize("kind", ["disk", "memory"])
async def test_seq_grows_ack_removes_pending_in_order(kind: str, tmp_path: Path) -> None:
    spool = await make(kind, tmp_path)
    seqs = [await spool.append(frame) for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert await spool.ack([2, 4, 99]) == 2
    assert await spool.pending(after=0, limit=10) == [(1, frame(1)), (3, frame(3)), (5, frame(5))]
    assert await spool.pending(after=1, limit=1) == [(3, frame(3))]
    assert await spool.size() == 3
    assert await spool.last_seq() == 5
    await spool.close()


async def test_disk_spool_survives_a_restart_and_keeps_counting(tmp_path: Path) -> None:
    spool = await DiskSpool.open(tmp_path / "s.sqlite3", 100)
    for _ in range(3):
        await spool.append(frame)
    await spool.ack([1])
    await spool.close()

    reopened = await DiskSpool.open(tmp_path / "s.sqlite3", 100)
    assert [s for s, _ in await reopened.pending(0, 10)] == [2, 3]
    assert await reopened.append(frame) == 4  # never reuses a seq
    await reopened.close()


@pytest.mark.parametrize("kind", ["disk", "memory"])
async def test_full_spool_drops_the_oldest_counts_and_logs(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = await make(kind, tmp_path, max_frames=10)
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        for _ in range(13):
            await spool.append(frame)
    assert [s for s, _ in await spool.pending(0, 100)] == list(range(4, 14))
    assert await spool.dropped() == 3
    assert "dropped the 1 oldest" in caplog.text
    await spool.close()


async def test_dropped_count_is_kept_on_disk(tmp_path: Path) -> None:
    spool = await DiskSpool.open(tmp_path / "s.sqlite3", 10)
    for _ in range(12):
        await spool.append(frame)
    await spool.close()
    reopened = await DiskSpool.open(tmp_path / "s.sqlite3", 10)
    assert await reopened.dropped() == 2
    await reopened.close()
