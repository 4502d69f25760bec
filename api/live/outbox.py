"""One bounded outgoing queue per socket. Pushing never waits on the socket.

Two policies: `coalesce` (metrics sockets) drops the pending droppable frames when the queue is
full and keeps the newest, counting what it dropped so the client learns of the gap; `close`
(logs sockets) never drops: a full queue marks the socket a slow consumer, and the session
closes it. Frames that must not be dropped (alerts, pongs, errors) are pushed as not droppable.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Literal

Policy = Literal["coalesce", "close"]


class Outbox:
    __slots__ = ("_event", "_frames", "_on_overflow", "limit", "overflowed", "policy", "skipped")

    def __init__(self, limit: int, policy: Policy, on_overflow: Callable[[], None]) -> None:
        self.limit = limit
        self.policy = policy
        self.skipped = 0  # frames coalesced away since the last frame the sender took
        self.overflowed = False
        self._frames: deque[tuple[str, bool]] = deque()
        self._event = asyncio.Event()
        self._on_overflow = on_overflow

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, text: str, *, droppable: bool) -> None:
        if self.overflowed:
            return
        if len(self._frames) >= self.limit:
            if self.policy == "coalesce":
                kept = deque(f for f in self._frames if not f[1])
                self.skipped += len(self._frames) - len(kept)
                self._frames = kept
            if len(self._frames) >= self.limit:
                self.overflowed = True
                self._frames.clear()
                self._on_overflow()
                return
        self._frames.append((text, droppable))
        self._event.set()

    async def get(self) -> tuple[str, int]:
        """The next frame and how many frames were coalesced away just before it."""
        while not self._frames:
            self._event.clear()
            await self._event.wait()
        text, _ = self._frames.popleft()
        skipped, self.skipped = self.skipped, 0
        return text, skipped
