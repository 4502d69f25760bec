"""The backfill seam: a publisher sends numbered samples continuously while persistence lags
behind Kafka and 50 clients connect at random moments; each must see every number from its
window's start onward, once, in order (database history, then the Kafka span, then live)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from typing import Any

import psycopg
import pytest

from api.live.settings import LiveSettings
from schemas import topics
from schemas.settings import CommonSettings
from tests.conftest import FULL, IN_CI, TEST_PARTITIONS
from tests.support.live_harness import (
    ApiServer,
    Persister,
    Publisher,
    add_server,
    add_user,
    client,
    log_record,
    number_of,
    sample,
    wait_persisted_offset,
)
from tests.support.persist import PersistEnv, running

CLIENTS = 50
PRELOADED = 120  # persisted before anyone connects
LIVE_NUMBERS = 1500 if FULL else (200 if IN_CI else 300)  # published while the clients connect
RATE = 150.0  # samples per second


async def _publish(pub: Publisher, kind: str, server: Any, noise: Any, start: int, stop: int) -> list[int]:
    """Publish numbers [start, stop) of `server` (and noise); the offsets of `server`'s messages."""
    rng = random.Random(7)
    offsets: list[int] = []
    for n in range(start, stop):
        if kind == "metrics":
            offsets.append((await pub.metric(sample(server, n)))[1])
            if rng.random() < 0.5:  # another server of the same partition, to be filtered out
                await pub.metric(sample(noise, n))
        else:
            offsets.append((await pub.log(log_record(server, n)))[1])
            if rng.random() < 0.5:
                await pub.log(log_record(noise, n))
        await asyncio.sleep(1 / RATE)
    return offsets


def _check(frames: list[dict[str, Any]], kind: str, last: int) -> tuple[int, int]:
    data = [f for f in frames if f["type"] in ("metrics", "log")]
    numbers = [number_of(f) for f in data]
    assert numbers == list(range(last + 1)), (
        f"gap or duplicate: first {numbers[:3]}, length {len(numbers)}, "
        f"missing {sorted(set(range(last + 1)) - set(numbers))[:5]}, "
        f"duplicates {len(numbers) - len(set(numbers))}"
    )
    # History first, then the seam marker, then frames with strictly increasing positions.
    types = [f["type"] for f in frames if f["type"] != "auth_success"]
    seam = types.index("history_end")
    history = [f for f in data if f["history"]]
    assert all(f["history"] for f in data[: len(history)]) and len(history) <= seam
    end = frames[[f["type"] for f in frames].index("history_end")]["position"]["offset"]
    offsets = [f["position"]["offset"] for f in data if not f["history"]]
    assert offsets == sorted(set(offsets)) and (not offsets or offsets[0] > end)
    return len(history), len(offsets)


def _persistence(
    real: bool, common: CommonSettings, topic: str
) -> contextlib.AbstractAsyncContextManager[Any]:
    """The real persistence processor (its batches lag behind Kafka by up to a second), or the
    stand-in that lags 40 messages behind on purpose."""
    if real:
        env = PersistEnv(common=common, prefix=common.topic_prefix)
        return running(env.settings(batch_within_seconds=1.0, batch_max_records=500))
    return Persister(common.kafka_bootstrap, common.database_url, topic, TEST_PARTITIONS, lag=40, batch=25)


# (kind, hub window, real persistence processor). The window of 16 forces the Kafka replay path
# (persistence lags further behind than the hub remembers); 20,000 serves the lag from memory.
CASES = {
    "metrics-replay-from-kafka": ("metrics", 16, False),
    "logs-replay-from-kafka": ("logs", 16, False),
    "metrics-real-persistence-processor": ("metrics", 20_000, True),
}
if FULL or not IN_CI:  # reduced under CI: the window path is also covered with the real processor
    CASES["metrics-window-covers-lag"] = ("metrics", 20_000, False)
    CASES["metrics-real-persistence-replay"] = ("metrics", 16, True)


@pytest.mark.parametrize(("kind", "window", "real"), list(CASES.values()), ids=list(CASES))
async def test_backfill_then_live_is_gapless_for_clients_joining_at_random_moments(
    common_settings: CommonSettings,
    db: psycopg.AsyncConnection[Any],
    kafka_bootstrap: str,
    topic_prefix: str,
    kind: str,
    window: int,
    real: bool,
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    partition = topics.partition_for_key(topics.server_key(server), TEST_PARTITIONS)
    noise = await add_server(db, owner, partition=partition)
    topic = (topics.METRICS if kind == "metrics" else topics.LOGS).name(topic_prefix)
    live = LiveSettings(
        window_messages=window,
        metrics_queue_frames=100_000,  # this test is about the seam, not about coalescing
        logs_queue_frames=100_000,
        max_history_frames=100_000,
        max_log_lines=100_000,
    )
    last = PRELOADED + LIVE_NUMBERS - 1
    async with (
        ApiServer(common_settings, live) as api,
        Publisher(kafka_bootstrap, topic_prefix) as pub,
        _persistence(real, common_settings, topic),
    ):
        # Some history is in the database before anyone connects (the persister lags 40 behind,
        # so publish 40 more than it should hold).
        preloaded = await _publish(pub, kind, server, noise, 0, PRELOADED)
        # Wait until part of it is persisted, so the first clients get database history too.
        await wait_persisted_offset(db, topic, partition, preloaded[PRELOADED // 2])
        token = api.token(owner)
        auth: dict[str, Any] = {"type": "auth", "token": token, "lines": 100_000}

        async def one_client(delay: float) -> list[dict[str, Any]]:
            await asyncio.sleep(delay)
            async with client(api.url(kind, server), auth) as c:
                await c.until(lambda f: f["type"] in ("metrics", "log") and number_of(f) == last, within=120)
                return c.frames

        duration = LIVE_NUMBERS / RATE
        rng = random.Random(11)
        tasks: list[Awaitable[list[dict[str, Any]]]] = [
            one_client(rng.uniform(0, duration * 0.9)) for _ in range(CLIENTS)
        ]
        results = await asyncio.gather(_publish(pub, kind, server, noise, PRELOADED, last + 1), *tasks)
        replays = api.live.reader.replays
    split = [_check(frames, kind, last) for frames in results[1:]]
    assert any(h > 0 for h, _ in split), "no client got database history"
    assert all(lv > 0 for _, lv in split), "a client got no live frames"
    if window < 100:
        assert replays > 0, "the Kafka replay path was not exercised"
