"""The agent key gate (`ingest/ratelimit.py`): failures are limited by address and by key
separately, and nobody else's failures refuse a valid key."""

from __future__ import annotations

import asyncio
import uuid

from ingest.db import KeyCheck, KeyIdentity
from ingest.ratelimit import RATE_LIMITED, FailedAuthLimiter, KeyAuthGate
from schemas import apikeys

VALID, _ = apikeys.generate()
REVOKED, _ = apikeys.generate()
UNKNOWN, _ = apikeys.generate()
SERVER = uuid.uuid4()


class FakeKeys:
    def __init__(self) -> None:
        self.lookups = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def verify(self, key: str) -> KeyCheck:
        self.lookups += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if key == VALID:
                return KeyCheck(KeyIdentity(uuid.uuid4(), SERVER, "agent"), "ok", SERVER)
            if key == REVOKED:
                return KeyCheck(None, "revoked", SERVER)
            parsed, valid = apikeys.parse(key), apikeys.parse(VALID)
            if parsed is None:
                return KeyCheck(None, "malformed")
            same_lookup = valid is not None and parsed.lookup_id == valid.lookup_id
            return KeyCheck(None, "mismatch" if same_lookup else "unknown")
        finally:
            self.in_flight -= 1


def gate(keys: FakeKeys, limit: int = 3) -> KeyAuthGate:
    return KeyAuthGate(FailedAuthLimiter(limit, 60.0, 100), FailedAuthLimiter(limit, 60.0, 100), keys.verify)


async def test_a_valid_key_is_served_from_an_address_past_its_limit() -> None:
    keys = FakeKeys()
    auth = gate(keys)
    for _ in range(3):
        assert (await auth.check(UNKNOWN, "10.0.0.1")).reason == "unknown"
    # Past the limit: failures are answered as rate limited, a malformed key without a lookup ...
    assert (await auth.check(UNKNOWN, "10.0.0.1")).reason == RATE_LIMITED
    before = keys.lookups
    assert (await auth.check("nope", "10.0.0.1")).reason == RATE_LIMITED
    assert keys.lookups == before
    # ... and the valid key from the same address is served.
    assert (await auth.check(VALID, "10.0.0.1")).identity is not None
    # Another address is untouched.
    assert (await auth.check(UNKNOWN, "10.0.0.2")).reason == "unknown"


async def test_a_blocked_address_gets_one_lookup_at_a_time() -> None:
    keys = FakeKeys()
    auth = gate(keys, limit=1)
    await auth.check(UNKNOWN, "10.0.0.1")
    results = await asyncio.gather(
        *(auth.check(UNKNOWN, "10.0.0.1") for _ in range(20)), auth.check(VALID, "10.0.0.1")
    )
    assert keys.most_in_flight == 1
    assert [r.reason for r in results[:-1]] == [RATE_LIMITED] * 20
    assert results[-1].identity is not None
    assert auth._lookups == {}  # nothing kept once no one waits


async def test_a_key_refused_for_its_own_state_is_limited_from_every_address() -> None:
    keys = FakeKeys()
    auth = gate(keys)
    for n in range(3):
        assert (await auth.check(REVOKED, f"10.0.1.{n}")).reason == "revoked"
    before = keys.lookups
    assert (await auth.check(REVOKED, "10.0.2.1")).reason == RATE_LIMITED  # no lookup at all
    assert keys.lookups == before
    # Wrong secrets with someone's lookup id never count against that key.
    parsed = apikeys.parse(VALID)
    assert parsed is not None
    forged = f"fpk_{parsed.lookup_id}_{'A' * 43}"
    for n in range(10):
        assert (await auth.check(forged, f"10.0.3.{n}")).reason == "mismatch"
    assert not auth.by_key.blocked(parsed.lookup_id)
    assert (await auth.check(VALID, "10.0.4.1")).identity is not None
