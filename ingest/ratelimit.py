"""Failed authentications per client address, in a sliding window.

Keys are long random secrets, so this is not about guessing them: it stops one address from
hammering the key lookup (and the connection-event topic) with bad keys.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailedAuthLimiter:
    def __init__(
        self, limit: int, window: float, max_tracked: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._max_tracked = max_tracked
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def blocked(self, address: str) -> bool:
        """True while `address` has `limit` failures within the window."""
        failures = self._recent(address)
        return failures is not None and len(failures) >= self._limit

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=self._limit)
        failures.append(self._clock())
        self._failures.move_to_end(address)
        while len(self._failures) > self._max_tracked:
            # The least recently failing address is forgotten first: memory stays bounded.
            self._failures.popitem(last=False)
