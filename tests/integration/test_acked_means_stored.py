"""Issue 12's reproduction: one crafted frame (an int8 overflow in `network[0].bytes_sent`) must never
erase anyone's acknowledged data. Two users on the real stack (ingest, Kafka, persistence,
TimescaleDB): the bad frame is refused at the edge; and with the edge bypassed (the bad payload
produced straight to Kafka, as an ingest without the bounds would have), the bad message is
dead-lettered with its reason and every other message of its batch is stored."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import topics
from schemas.canonical import DeadLetter, MetricSample, utcnow
from tests.integration.test_ingest_socket import authed, make_settings, recv
from tests.support.ingest_harness import Key, RunningIngest, create_key, kafka_producer
from tests.support.persist import PersistEnv, new_env, running, scalar, wait_until

pytestmark = pytest.mark.timeout(180)

INT8_OVERFLOW = 2**63  # one past the largest bigint


@pytest.fixture
async def env(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> PersistEnv:
    return await new_env(database_url, kafka_bootstrap, tmp_path / "state")


async def _keys(env: PersistEnv) -> tuple[Key, Key]:
    """Two users, each with a server and its API key."""
    pepper = env.common.key_pepper.get_secret_value()
    return (
        await create_key(env.common.database_url, pepper),
        await create_key(env.common.database_url, pepper),
    )


def _metrics(seq: int, second: int, bytes_sent: int = 10) -> dict[str, Any]:
    return {
        "type": "metrics",
        "seq": seq,
        "timestamp": utcnow().replace(microsecond=0, second=second).isoformat(),
        "cpu_percent": 10.0 + seq,
        "memory_percent": 50.0,
        "network": [{"interface": "eth0", "bytes_sent": bytes_sent, "bytes_recv": 20}],
    }


def _log(seq: int) -> dict[str, Any]:
    return {
        "type": "log",
        "seq": seq,
        "level": "info",
        "message": f"victim line {seq}",
        "timestamp": utcnow().isoformat(),
        "source": "app",
    }


async def _victim_sends(ingest: RunningIngest, victim: Key) -> list[dict[str, Any]]:
    """The other user's three metrics frames and one log line, each acknowledged."""
    frames = [_metrics(1, 1), _metrics(2, 2), _metrics(3, 3), _log(4)]
    ws = await authed(ingest, victim)
    for frame in frames:
        await ws.send(orjson.dumps(frame).decode())
    assert [await recv(ws) for _ in frames] == [{"type": "ack", "seq": n} for n in (1, 2, 3, 4)]
    await ws.close()
    return frames


async def _stored(dsn: str, victim: Key) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT m.cpu_percent, i.bytes_sent FROM metrics m JOIN metric_interfaces i "
            "ON i.server_id = m.server_id AND i.time = m.time WHERE m.server_id = %s ORDER BY m.time",
            (victim.server_id,),
        )
        metrics = await cur.fetchall()
        cur = await conn.execute(
            "SELECT level, message, source FROM logs WHERE server_id = %s", (victim.server_id,)
        )
        logs = await cur.fetchall()
    return metrics, logs, len(metrics) + len(logs)


async def _victim_stored(dsn: str, victim: Key) -> bool:
    return (await _stored(dsn, victim))[2] >= 4


async def _assert_victim_stored_exactly(dsn: str, victim: Key) -> None:
    metrics, logs, _ = await _stored(dsn, victim)
    assert metrics == [(11.0, 10), (12.0, 10), (13.0, 10)]
    assert logs == [("INFO", "victim line 4", "app")]


async def test_the_overflowing_frame_is_refused_at_the_edge_and_the_other_users_data_is_stored(
    env: PersistEnv,
) -> None:
    attacker, victim = await _keys(env)
    dsn = env.common.database_url
    async with (
        RunningIngest(make_settings(env.common)) as ingest,
        running(env.settings(batch_within_seconds=0.5)) as persistence,
    ):
        bad = await authed(ingest, attacker)
        await bad.send(orjson.dumps(_metrics(1, 0, bytes_sent=INT8_OVERFLOW)).decode())
        await _victim_sends(ingest, victim)
        refusal = await recv(bad)
        # The protocol's validation error, naming the field, echoing the seq: never an ack.
        assert refusal["type"] == "error" and refusal["code"] == "validation", refusal
        assert refusal["seq"] == 1
        assert "network.0.bytes_sent" in refusal["detail"]
        # The socket stays open and the same agent's next good frame is accepted.
        await bad.send(orjson.dumps(_metrics(2, 5)).decode())
        assert await recv(bad) == {"type": "ack", "seq": 2}
        await bad.close()
        await wait_until(lambda: _victim_stored(dsn, victim), what="the other user's four frames stored")
        await _assert_victim_stored_exactly(dsn, victim)
        assert persistence.stats.dead_letters == 0
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="validation") == 1
    assert await scalar(dsn, "SELECT count(*) FROM metrics WHERE server_id = %s", (attacker.server_id,)) == 1


async def test_with_the_edge_bypassed_the_bad_message_is_dead_lettered_and_the_others_stored(
    env: PersistEnv,
) -> None:
    attacker, victim = await _keys(env)
    dsn = env.common.database_url
    # What an ingest without the bounds produced: a canonical sample holding 2^63.
    good = MetricSample(
        server_id=attacker.server_id,
        time=utcnow(),
        received_at=utcnow(),
        cpu_percent=1.0,
        memory_percent=2.0,
    )
    poisoned = good.model_dump(mode="json")
    poisoned["interfaces"] = [{"interface": "eth0", "bytes_sent": INT8_OVERFLOW, "bytes_recv": 1}]
    async with RunningIngest(make_settings(env.common)) as ingest:
        async with kafka_producer(env.common.kafka_bootstrap) as producer:
            await producer.send_and_wait(
                env.topic(topics.METRICS), orjson.dumps(poisoned), key=topics.server_key(attacker.server_id)
            )
        await _victim_sends(ingest, victim)
    # Everything is in Kafka before the consumer starts, so the poison and the other user's
    # messages are read in one batch (the batch the old code dropped and then committed past).
    async with running(env.settings(batch_within_seconds=1.0)) as persistence:
        await wait_until(lambda: _victim_stored(dsn, victim), timeout=45, what="the other user's four frames")
        await _assert_victim_stored_exactly(dsn, victim)
        letters = await _dead_letters(env, 1)
        assert not persistence.should_stop
    assert letters[0].topic == env.topic(topics.METRICS)
    assert str(attacker.server_id) in letters[0].value and str(INT8_OVERFLOW) in letters[0].value
    # Refused when persistence decodes it: the canonical payloads carry the storage bounds too (the
    # write path's own isolation, whatever a write raises, is tested in test_persist_never_skips).
    assert "interfaces.0.bytes_sent" in letters[0].error, letters[0].error
    assert "less than or equal to 9223372036854775807" in letters[0].error
    assert await scalar(dsn, "SELECT count(*) FROM metrics WHERE server_id = %s", (attacker.server_id,)) == 0


async def _dead_letters(env: PersistEnv, n: int) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        env.topic(topics.DEAD_LETTERS),
        bootstrap_servers=env.common.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"dead-letters-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        async with asyncio.timeout(30):
            while len(letters) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    letters += [DeadLetter.model_validate_json(r.value or b"") for r in records]
        await asyncio.sleep(1.0)  # and no more than that
        for records in (await consumer.getmany(timeout_ms=500)).values():
            letters += [DeadLetter.model_validate_json(r.value or b"") for r in records]
    finally:
        await consumer.stop()
    assert len(letters) == n, letters
    return letters
