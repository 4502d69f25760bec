"""Backoff with full jitter, and a token bucket.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the n-th wait is uniform in
[0, min(cap, base * 2**n)]. A fleet that lost its server at the same instant therefore spreads its
reconnects over the whole window instead of arriving in waves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self._rng.uniform(0, ceiling)

    def at_cap(self) -> float:
        """A wait near the cap (jittered), for a server that asked us to stay away."""
        self.attempt = max(self.attempt, 32)
        return self._rng.uniform(self.cap / 2, self.cap)

    def reset(self) -> None:
        self.attempt = 0


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def wait_time(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (0 if they are now)."""
        self._refill()
        return max(0.0, (n - self._tokens) / self.rate)
