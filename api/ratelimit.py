"""A sliding-window rate limiter, in process memory.

Each API process counts on its own: with N replicas behind a balancer a client gets at most N
times the limit, which still bounds password guessing and command floods. Keys that fall idle are
pruned, so memory stays bounded by the number of keys active within one window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

from .errors import TooManyRequests


class RateLimiter:
    def __init__(
        self, limit: int, window_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}
        self._last_prune = clock()

    def hit(self, key: Hashable, what: str) -> None:
        """Count one attempt for `key`, or raise TooManyRequests (with Retry-After) when over."""
        self.check(key, what)
        self.count(key)

    def check(self, key: Hashable, what: str) -> None:
        """Raise TooManyRequests (with Retry-After) when `key` is at its limit; count nothing
        (with `count`, a limit on failures only)."""
        now = self._clock()
        self._prune(now)
        hits = self._hits.get(key)
        if hits is None:
            return
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            raise TooManyRequests(f"too many {what}; retry later", retry_after=hits[0] + self.window - now)

    def count(self, key: Hashable) -> None:
        """Count one event for `key` (a failure), whatever the limit: at most `limit` are kept."""
        now = self._clock()
        self._prune(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        hits.append(now)
        if len(hits) > self.limit:
            hits.popleft()  # the limit is reached either way: memory stays bounded per key

    def reset(self, key: Hashable) -> None:
        self._hits.pop(key, None)

    def _prune(self, now: float) -> None:
        if now - self._last_prune < self.window:
            return
        self._last_prune = now
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]
