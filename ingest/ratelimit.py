"""Failed authentications per client address and per key, in sliding windows.

Keys are long random secrets, so this is not about guessing them: it stops one address from
hammering the key lookup (and the connection-event topic) with bad keys, and a refused key's agent
from reconnecting in a loop, without ever refusing a valid key because of someone else's failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable

from schemas import apikeys

from .db import KeyCheck


class FailedAuthLimiter:
    """Failures per name (an address, a key's lookup id) within a sliding window; memory bounded
    by `max_tracked` names."""

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


# A key's own state refuses it whoever presents it: failures for these reasons count against the
# key. A wrong secret (or an unknown lookup id) says nothing about the key's owner, so it counts
# against the address only: nobody can lock a key out by presenting it wrong.
KEY_STATE_REASONS = frozenset({"revoked", "inactive", "expired"})
RATE_LIMITED = "rate_limited"


class KeyAuthGate:
    """Agent key checks with failures limited by address and by key, separately.

    - By address (`by_address`): an address past its failure limit keeps being served when it
      presents a valid key, so an attacker sharing an agent's address (a NAT, a proxy) cannot
      lock that agent out. Its failures are answered as rate limited; a missing or malformed key
      from it is refused before any lookup; its well-formed keys are looked up one at a time
      (one indexed lookup in flight per blocked address, so it cannot hammer the database).
    - By key (`by_key`, on the key's non-secret lookup id): a key refused for its own state
      (revoked, inactive, expired) past the limit is refused without a lookup, from anywhere.
    """

    def __init__(
        self,
        by_address: FailedAuthLimiter,
        by_key: FailedAuthLimiter,
        verify: Callable[[str], Awaitable[KeyCheck]],
    ) -> None:
        self.by_address = by_address
        self.by_key = by_key
        self._verify = verify
        self._lookups: dict[str, tuple[asyncio.Lock, int]] = {}

    async def check(self, key: str, address: str) -> KeyCheck:
        """The key's check; `reason == RATE_LIMITED` when a limit refused it. Raises what the
        lookup raises (DatabaseUnavailable)."""
        parsed = apikeys.parse(key)
        if parsed is not None and self.by_key.blocked(parsed.lookup_id):
            return KeyCheck(None, RATE_LIMITED)
        blocked = self.by_address.blocked(address)
        if blocked and parsed is None:
            self.by_address.failed(address)
            return KeyCheck(None, RATE_LIMITED)
        if blocked:
            async with self._one_lookup(address):
                check = await self._verify(key)
        else:
            check = await self._verify(key)
        if check.identity is not None:
            return check
        self.by_address.failed(address)
        if parsed is not None and check.reason in KEY_STATE_REASONS:
            self.by_key.failed(parsed.lookup_id)
        return KeyCheck(None, RATE_LIMITED, check.server_id) if blocked else check

    @contextlib.asynccontextmanager
    async def _one_lookup(self, address: str) -> AsyncIterator[None]:
        lock, users = self._lookups.get(address, (asyncio.Lock(), 0))
        self._lookups[address] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._lookups[address]
            if users <= 1:
                del self._lookups[address]  # no one waits: the address costs nothing
            else:
                self._lookups[address] = (lock, users - 1)
