"""Backoff with full jitter (no lockstep reconnects) and the token bucket."""

from __future__ import annotations

import random
from collections import Counter

from fleetpulse_agent.pacing import Backoff, TokenBucket


def test_full_jitter_stays_within_the_growing_ceiling_and_the_cap() -> None:
    b = Backoff(base=1.0, cap=30.0, rng=random.Random(1))
    for attempt in range(12):
        ceiling = min(30.0, 2.0**attempt)
        d = b.next_delay()
        assert 0 <= d <= ceiling
    b.reset()
    assert b.next_delay() <= 1.0


def test_a_thousand_agents_do_not_reconnect_in_lockstep() -> None:
    # 1000 agents lose their server at the same instant and each retries 5 times: the moments of
    # their reconnect attempts must be spread, not bunched into waves.
    rng = random.Random(42)
    agents = [Backoff(base=1.0, cap=60.0, rng=random.Random(rng.random())) for _ in range(1000)]
    for attempt in range(5):
        delays = [a.next_delay() for a in agents]
        ceiling = min(60.0, 2.0**attempt)
        per_tenth = Counter(int(d / ceiling * 10) for d in delays)
        # Uniform over the window: each tenth of it holds about 100 agents, never a crowd.
        assert max(per_tenth.values()) < 160, (attempt, per_tenth)
        assert len({round(d, 3) for d in delays}) > 500  # lockstep would be one value


def test_at_cap_waits_near_the_cap() -> None:
    b = Backoff(base=1.0, cap=20.0, rng=random.Random(3))
    assert all(10.0 <= b.at_cap() <= 20.0 for _ in range(100))


def test_token_bucket_rate_and_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=5, clock=lambda: now[0])
    assert sum(bucket.try_take() for _ in range(20)) == 5
    assert bucket.wait_time() == 0.1
    now[0] += 1.0
    assert sum(bucket.try_take() for _ in range(20)) == 5  # refills, but never beyond the burst
    now[0] += 0.3
    assert sum(bucket.try_take() for _ in range(20)) == 3
