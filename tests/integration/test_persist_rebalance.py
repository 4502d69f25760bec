"""Two workers share the partitions; one joins and one leaves mid-stream: nothing is lost, and
(because a rebalance waits for the batch in flight to be committed) nothing is read twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.canonical import MetricSample, utcnow
from stream_processors.persist import PersistenceService
from tests.support.persist import PersistEnv, count_metrics, new_env, running, sample, wait_until


async def _produce_slowly(env: PersistEnv, samples: Sequence[MetricSample]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=env.common.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        topic = env.topic(topics.METRICS)
        for begin in range(0, len(samples), 16):
            sent = [
                await producer.send(topic, s.to_bytes(), key=topics.server_key(s.server_id))
                for s in samples[begin : begin + 16]
            ]
            await asyncio.gather(*sent)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


@pytest.mark.timeout(240)
async def test_two_workers_share_partitions_and_rebalances_lose_and_duplicate_nothing(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = await new_env(database_url, kafka_bootstrap, tmp_path / "state")
    servers = [uuid.uuid4() for _ in range(16)]  # spread over all four partitions
    start = utcnow() - timedelta(hours=3)
    samples = [
        sample(s, start + timedelta(seconds=5 * i), cpu=float(i % 100)) for i in range(120) for s in servers
    ]
    total = len(samples)
    phases = (samples[: total // 3], samples[total // 3 : 2 * total // 3], samples[2 * total // 3 :])
    # Both workers run with these settings: the same app id, so one consumer group.
    settings = env.settings(batch_max_records=50, batch_within_seconds=0.1)
    metrics_partitions = {(env.topic(topics.METRICS), p) for p in range(4)}

    async with running(settings) as first:
        await _produce_slowly(env, phases[0])
        await wait_until(lambda: _at_least(database_url, servers, 1), what="the first worker's rows")
        async with running(settings) as second:
            # The second worker joins: the group rebalances and each holds a share.
            await wait_until(lambda: _shared(first, second, metrics_partitions), what="the partitions shared")
            await _produce_slowly(env, phases[1])
            await wait_until(lambda: _has_read(second), what="the second worker to read its share")
            # It leaves while the stream is flowing: the first takes every partition back.
            third = asyncio.create_task(_produce_slowly(env, phases[2]))
            await asyncio.sleep(0.2)
        assert not third.done(), "the leave came after the stream ended"
        await third
        await wait_until(lambda: _at_least(database_url, servers, total), timeout=90, what="every sample")
        read = first.stats.messages + second.stats.messages

    assert await count_metrics(database_url, servers) == (total, total)
    # Nothing was delivered twice: each message was taken from Kafka by exactly one worker, once.
    assert read == total
    assert first.stats.commit_failures == 0 and second.stats.commit_failures == 0


async def _at_least(dsn: str, servers: list[uuid.UUID], n: int) -> bool:
    return (await count_metrics(dsn, servers))[0] >= n


async def _shared(
    first: PersistenceService, second: PersistenceService, wanted: set[tuple[str, int]]
) -> bool:
    mine, theirs = first.assignment & wanted, second.assignment & wanted
    return bool(mine) and bool(theirs) and mine | theirs == wanted


async def _has_read(service: PersistenceService) -> bool:
    return service.stats.messages > 0
