"""Samples in, rows out with exact values; replays add nothing; poison goes to the dead letters."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import topics
from schemas.canonical import DeadLetter, utcnow
from tests.support.persist import (
    PersistEnv,
    add_server,
    count_metrics,
    event,
    log_record,
    new_env,
    produce,
    result,
    running,
    sample,
    scalar,
    wait_until,
)


@pytest.fixture
async def env(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> PersistEnv:
    return await new_env(database_url, kafka_bootstrap, tmp_path / "state")


async def test_samples_become_rows_with_exact_values_and_replays_add_nothing(env: PersistEnv) -> None:
    dsn = env.common.database_url
    servers = [uuid.uuid4() for _ in range(5)]
    start = utcnow().replace(microsecond=123456) - timedelta(minutes=10)
    samples = [
        sample(
            s,
            start + timedelta(seconds=5 * i),
            cpu=(i * 7 + n) % 100 + 0.25,
            sent=1000 * i,
            recv=2000 * i,
            disk_percent=10.5 + i,
        )
        for n, s in enumerate(servers)
        for i in range(40)
    ]
    logs = [
        log_record(s, start + timedelta(seconds=i), f"line {i} of {s}") for s in servers for i in range(10)
    ]
    await produce(env, [*samples, *logs])

    async with running(env.settings()):
        await wait_until(lambda: _metrics_are(dsn, servers, len(samples)), what="every sample persisted")
        await wait_until(lambda: _logs_are(dsn, servers, len(logs)), what="every log persisted")

    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for s in (samples[0], samples[77], samples[-1]):
            cur = await conn.execute(
                "SELECT cpu_percent, memory_percent, memory_used_bytes, load1, uptime_seconds, cpu_cores, "
                "received_at FROM metrics WHERE server_id = %s AND time = %s",
                (s.server_id, s.time),
            )
            assert await cur.fetchone() == (
                s.cpu_percent,
                s.memory_percent,
                s.memory_used_bytes,
                s.load1,
                s.uptime_seconds,
                s.cpu_cores,
                s.received_at,
            )
            cur = await conn.execute(
                "SELECT mount, used_bytes, percent FROM metric_disks WHERE server_id = %s AND time = %s",
                (s.server_id, s.time),
            )
            assert await cur.fetchall() == [("/", s.disks[0].used_bytes, s.disks[0].percent)]
            cur = await conn.execute(
                "SELECT interface, bytes_sent, bytes_recv, packets_sent, errors_in FROM metric_interfaces "
                "WHERE server_id = %s AND time = %s",
                (s.server_id, s.time),
            )
            assert await cur.fetchall() == [
                ("eth0", s.interfaces[0].bytes_sent, s.interfaces[0].bytes_recv, 7, None)
            ]
        cur = await conn.execute(
            "SELECT level, source, message, entry_id FROM logs WHERE server_id = %s AND time = %s",
            (logs[3].server_id, logs[3].time),
        )
        assert await cur.fetchall() == [("INFO", "syslog", logs[3].message, logs[3].entry_id)]
        # The seam: the highest persisted offset of each partition is the last one produced.
        cur = await conn.execute(
            "SELECT sum(last_offset + 1) FROM persisted_offsets WHERE topic = %s",
            (env.topic(topics.METRICS),),
        )
        assert (await cur.fetchone()) == (len(samples),)

    # The same messages again, read by a fresh consumer group from the start: nothing new.
    await produce(env, [*samples, *logs])
    async with running(env.settings()) as again:
        await wait_until(
            lambda: _persisted_offsets_reach(dsn, env.topic(topics.METRICS), 2 * len(samples)),
            what="the replayed samples read",
        )
        await wait_until(
            lambda: _persisted_offsets_reach(dsn, env.topic(topics.LOGS), 2 * len(logs)),
            what="the replayed logs read",
        )
        assert again.stats.messages >= 2 * (len(samples) + len(logs))
    assert await count_metrics(dsn, servers) == (len(samples), len(samples))
    assert await scalar(
        dsn, "SELECT count(*) FROM metric_disks WHERE server_id = ANY(%s)", (servers,)
    ) == len(samples)
    assert await scalar(
        dsn, "SELECT count(*) FROM metric_interfaces WHERE server_id = ANY(%s)", (servers,)
    ) == len(samples)
    assert await scalar(dsn, "SELECT count(*) FROM logs WHERE server_id = ANY(%s)", (servers,)) == len(logs)


async def test_undecodable_and_unstorable_messages_are_dead_lettered_and_counted(env: PersistEnv) -> None:
    dsn = env.common.database_url
    server = uuid.uuid4()
    now = utcnow()
    good = [sample(server, now - timedelta(seconds=i), cpu=float(i)) for i in range(20)]
    # PostgreSQL cannot store a NUL character in text: the canonical model refuses it (as an
    # ingest without the bounds would have produced it), isolated, not blocking.
    fine_log = log_record(server, now, "a fine line", ordinal=1)
    unstorable = fine_log.to_bytes().replace(b"a fine line", b"nul \\u0000 inside")
    await produce(
        env,
        [*good[:10], fine_log, *good[10:]],
        raw=[
            (env.topic(topics.METRICS), b"{not json"),
            (env.topic(topics.LOGS), b'{"kind": "log_record"}'),
            (env.topic(topics.LOGS), unstorable),
        ],
    )
    async with running(env.settings()) as service:
        await wait_until(lambda: _metrics_are(dsn, [server], 20), what="the good samples")
        await wait_until(lambda: _logs_are(dsn, [server], 1), what="the storable log")
        await wait_until(_stat_reaches(service, "dead_letters", 3), what="three dead letters")

    letters = await _read_dead_letters(env, 3)
    assert sum("text must not contain NUL" in letter.error for letter in letters) == 1
    assert {letter.topic for letter in letters} == {env.topic(topics.METRICS), env.topic(topics.LOGS)}
    assert any(letter.value == "{not json" for letter in letters)
    assert await scalar(dsn, "SELECT message FROM logs WHERE server_id = %s", (server,)) == "a fine line"


async def test_connection_events_keep_status_and_last_seen_true(env: PersistEnv) -> None:
    dsn = env.common.database_url
    _, server = await add_server(dsn)
    old_conn, new_conn = uuid.uuid4(), uuid.uuid4()
    t0 = utcnow()
    settings = env.settings(stale_after_seconds=3600)
    async with running(settings):
        await produce(env, [event(server, "connected", old_conn, t0)])
        await wait_until(lambda: _status_is(dsn, server, "online"), what="online after connect")
        # A newer socket takes over; the old one's disconnect (superseded, or not flagged) is ignored.
        await produce(
            env,
            [
                event(server, "connected", new_conn, t0 + timedelta(seconds=1)),
                event(server, "disconnected", old_conn, t0 + timedelta(seconds=2), superseded=True),
                event(server, "disconnected", old_conn, t0 + timedelta(seconds=3)),
                event(server, "auth_failed", uuid.uuid4(), t0 + timedelta(seconds=4)),
            ],
        )
        await wait_until(lambda: _events_are(dsn, server, 5), what="every event stored")
        assert await scalar(dsn, "SELECT status FROM servers WHERE id = %s", (server,)) == "online"
        assert await scalar(dsn, "SELECT last_seen FROM servers WHERE id = %s", (server,)) == t0 + timedelta(
            seconds=1
        )
        await produce(env, [event(server, "disconnected", new_conn, t0 + timedelta(seconds=5))])
        await wait_until(
            lambda: _status_is(dsn, server, "offline"), what="offline after the current socket left"
        )
        # Replaying the old connect (older than what is known) does not bring it back online.
        await produce(env, [event(server, "connected", old_conn, t0)])
        await wait_until(lambda: _events_are(dsn, server, 6), what="the replayed event")
        assert await scalar(dsn, "SELECT status FROM servers WHERE id = %s", (server,)) == "offline"


async def test_a_silent_server_becomes_stale(env: PersistEnv) -> None:
    from stream_processors.db import Database
    from stream_processors.retention import RetentionService

    dsn = env.common.database_url
    _, server = await add_server(dsn)
    async with running(env.settings(stale_after_seconds=3600)):
        await produce(env, [event(server, "connected", uuid.uuid4())])
        await wait_until(lambda: _status_is(dsn, server, "online"), what="online")
    # The sweep, with a silence limit the server has now exceeded.
    settings = env.settings(
        stale_after_seconds=1.0, stale_check_interval_seconds=0.2, retention_interval_seconds=3600
    )
    database = Database(settings)
    await database.start()
    sweeper = RetentionService(settings, database)
    await sweeper.start()
    try:
        await wait_until(lambda: _status_is(dsn, server, "stale"), what="stale after silence")
    finally:
        await sweeper.stop()
        await database.stop()


async def test_command_results_upsert_onto_the_api_request_row(env: PersistEnv) -> None:
    dsn = env.common.database_url
    server, requester = uuid.uuid4(), uuid.uuid4()
    sent, early = uuid.uuid4(), uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO command_history (command_id, server_id, requested_by, action, command, "
            "requested_at) VALUES (%s, %s, %s, 'shell', 'uptime', now())",
            (sent, server, requester),
        )
    await produce(
        env,
        [result(server, sent, "up 3 days"), result(server, early, "first"), result(server, early, "second")],
    )
    async with running(env.settings()):
        await wait_until(
            lambda: _result_output_is(dsn, early, "second"), what="the later result of a command wins"
        )
        await wait_until(
            lambda: _result_output_is(dsn, sent, "up 3 days"), what="the result on the request row"
        )
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT requested_by, action, command, success, exit_code, duration_ms FROM command_history "
            "WHERE command_id = %s",
            (sent,),
        )
        assert await cur.fetchone() == (requester, "shell", "uptime", True, 0, 12)
    assert await scalar(dsn, "SELECT count(*) FROM command_history WHERE server_id = %s", (server,)) == 2


# --- checks --------------------------------------------------------------------------------------


async def _metrics_are(dsn: str, servers: list[uuid.UUID], n: int) -> bool:
    return (await count_metrics(dsn, servers))[0] >= n


async def _logs_are(dsn: str, servers: list[uuid.UUID], n: int) -> bool:
    return int(await scalar(dsn, "SELECT count(*) FROM logs WHERE server_id = ANY(%s)", (servers,))) >= n


async def _events_are(dsn: str, server: uuid.UUID, n: int) -> bool:
    return int(await scalar(dsn, "SELECT count(*) FROM agent_events WHERE server_id = %s", (server,))) >= n


async def _status_is(dsn: str, server: uuid.UUID, status: str) -> bool:
    return bool(await scalar(dsn, "SELECT status FROM servers WHERE id = %s", (server,)) == status)


async def _result_output_is(dsn: str, command: uuid.UUID, output: str) -> bool:
    return bool(
        await scalar(dsn, "SELECT output FROM command_history WHERE command_id = %s", (command,)) == output
    )


async def _persisted_offsets_reach(dsn: str, topic: str, total: int) -> bool:
    found = await scalar(dsn, "SELECT sum(last_offset + 1) FROM persisted_offsets WHERE topic = %s", (topic,))
    return found is not None and int(found) >= total


def _stat_reaches(service: object, name: str, n: int):
    async def check() -> bool:
        return bool(getattr(service.stats, name) >= n)  # type: ignore[attr-defined]

    return check


async def _read_dead_letters(env: PersistEnv, n: int) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        env.topic(topics.DEAD_LETTERS),
        bootstrap_servers=env.common.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        async with __import__("asyncio").timeout(30):
            while len(letters) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    letters += [DeadLetter.model_validate_json(r.value) for r in records]
    finally:
        await consumer.stop()
    assert len(letters) == n
    return letters
