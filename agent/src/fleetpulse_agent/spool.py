"""The spool: every frame the agent sends is first written here, and removed when acknowledged.

A frame gets its `seq` when it is spooled; seq numbers only grow, across restarts too (the next one
is kept in the spool). Unacknowledged frames survive an agent restart and are replayed in seq
order, with the timestamps they were sampled at. The spool is bounded: when full, the oldest frames
are dropped, counted, and the drop is logged.

`DiskSpool` is SQLite (one file, WAL, `synchronous=FULL`): a frame is on disk before it is sent, and
a crash mid-write leaves the previous state intact, never a torn file. All SQLite calls run on one
worker thread, so the event loop never blocks on disk. `MemorySpool` has the same interface for the
simulator, whose agents need no durability.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from .errors import SpoolError

log = logging.getLogger(__name__)
T = TypeVar("T")

FrameBuilder = Callable[[int], bytes]
"""Builds a frame's bytes given the seq it was assigned."""


class Spool(Protocol):
    max_frames: int

    async def append(self, build: FrameBuilder) -> int: ...
    async def ack(self, seqs: Iterable[int]) -> int: ...
    async def pending(self, after: int, limit: int) -> list[tuple[int, bytes]]: ...
    async def size(self) -> int: ...
    async def dropped(self) -> int: ...
    async def last_seq(self) -> int: ...
    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (seq INTEGER PRIMARY KEY, frame BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('next_seq', 1), ('dropped', 0);
"""


class DiskSpool:
    def __init__(self, path: Path, max_frames: int) -> None:
        self.path = path
        self.max_frames = max_frames
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path, max_frames: int) -> DiskSpool:
        spool = cls(path, max_frames)
        await spool._run(spool._open)
        return spool

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a frame is on disk before it is sent
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc
        self._conn = conn

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolError("the spool is closed")
        return self._conn

    async def append(self, build: FrameBuilder) -> int:
        def run() -> int:
            db = self._db()
            with db:  # one transaction: the seq, the frame and any drop are committed together
                db.execute("BEGIN IMMEDIATE")
                (seq,) = db.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()
                db.execute("INSERT INTO frames (seq, frame) VALUES (?, ?)", (seq, build(seq)))
                db.execute("UPDATE meta SET value = ? WHERE name = 'next_seq'", (seq + 1,))
                (count,) = db.execute("SELECT count(*) FROM frames").fetchone()
                excess = count - self.max_frames
                if excess > 0:
                    db.execute(
                        "DELETE FROM frames WHERE seq IN (SELECT seq FROM frames ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
                    db.execute("UPDATE meta SET value = value + ? WHERE name = 'dropped'", (excess,))
            if excess > 0:
                _log_drop(excess, self.max_frames)
            return int(seq)

        return await self._run(run)

    async def ack(self, seqs: Iterable[int]) -> int:
        rows = [(s,) for s in seqs]

        def run() -> int:
            db = self._db()
            with db:
                db.execute("BEGIN IMMEDIATE")
                cur = db.executemany("DELETE FROM frames WHERE seq = ?", rows)
            return cur.rowcount

        return await self._run(run) if rows else 0

    async def pending(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        def run() -> list[tuple[int, bytes]]:
            cur = self._db().execute(
                "SELECT seq, frame FROM frames WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            )
            return [(int(s), bytes(f)) for s, f in cur.fetchall()]

        return await self._run(run)

    async def size(self) -> int:
        return await self._run(lambda: int(self._db().execute("SELECT count(*) FROM frames").fetchone()[0]))

    async def dropped(self) -> int:
        return await self._run(
            lambda: int(self._db().execute("SELECT value FROM meta WHERE name = 'dropped'").fetchone()[0])
        )

    async def last_seq(self) -> int:
        return await self._run(
            lambda: (
                int(self._db().execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()[0]) - 1
            )
        )

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)


class MemorySpool:
    """The same contract in memory: for the simulator, whose frames need not survive a restart."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self._frames: OrderedDict[int, bytes] = OrderedDict()
        self._next = 1
        self._dropped = 0

    async def append(self, build: FrameBuilder) -> int:
        seq = self._next
        self._next += 1
        self._frames[seq] = build(seq)
        excess = len(self._frames) - self.max_frames
        for _ in range(max(0, excess)):
            self._frames.popitem(last=False)
        if excess > 0:
            self._dropped += excess
            _log_drop(excess, self.max_frames)
        return seq

    async def ack(self, seqs: Iterable[int]) -> int:
        return sum(self._frames.pop(s, None) is not None for s in seqs)

    async def pending(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for seq, frame in self._frames.items():
            if seq > after:
                out.append((seq, frame))
                if len(out) >= limit:
                    break
        return out

    async def size(self) -> int:
        return len(self._frames)

    async def dropped(self) -> int:
        return self._dropped

    async def last_seq(self) -> int:
        return self._next - 1

    async def close(self) -> None:
        return None


def _log_drop(count: int, max_frames: int) -> None:
    log.warning(
        "spool full (%d frames): dropped the %d oldest unacknowledged frame(s); "
        "raise spool_max_frames to keep a longer outage",
        max_frames,
        count,
    )
