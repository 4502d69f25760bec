"""A worker (`python -m stream_processors`, a real process) is SIGKILLed mid-stream and
restarted: every sample is present exactly once, and every poison message in the stream (one
that cannot be decoded, one that cannot be stored) is in the dead-letter topic."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import topics
from schemas.canonical import DeadLetter, utcnow
from tests.conftest import ROOT
from tests.support.persist import PersistEnv, count_metrics, new_env, sample, scalar, wait_until
from tests.support.topics import read_from_beginning


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_worker(env: PersistEnv, app_id: str, log: Path) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "FLEETPULSE_ENV": "test",
        "FLEETPULSE_STATE_DIR": str(env.common.state_dir),
        "FLEETPULSE_KAFKA_BOOTSTRAP": env.common.kafka_bootstrap,
        "FLEETPULSE_DATABASE_URL": env.common.database_url,
        "FLEETPULSE_TOPIC_PREFIX": env.prefix,
        "FLEETPULSE_TOPIC_PARTITIONS": str(env.common.topic_partitions),
        "FLEETPULSE_PROCESSORS_APP_ID": app_id,
        "FLEETPULSE_PROCESSORS_WEB_PORT": str(_free_port()),
        "FLEETPULSE_PROCESSORS_BATCH_MAX_RECORDS": "100",
        "FLEETPULSE_PROCESSORS_BATCH_WITHIN_SECONDS": "0.2",
        "FLEETPULSE_PROCESSORS_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "FLEETPULSE_PROCESSORS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream_processors", "worker", "--loglevel", "warn"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.timeout(300)
async def test_sigkill_mid_batch_then_restart_loses_and_duplicates_nothing(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = await new_env(database_url, kafka_bootstrap, tmp_path / "state")
    servers = [uuid.uuid4() for _ in range(8)]
    start = utcnow() - timedelta(hours=2)
    samples = [
        sample(s, start + timedelta(seconds=5 * i), cpu=float(i % 100)) for i in range(250) for s in servers
    ]
    total = len(samples)
    app_id = f"persist-kill-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "worker.log"

    # Poison, spread through the stream: undecodable, and unstorable (an int8 overflow).
    unstorable = sample(uuid.uuid4(), start, cpu=1.0).model_dump(mode="json")
    unstorable["interfaces"] = [{"interface": "eth0", "bytes_sent": 2**63, "bytes_recv": 1}]
    poison = {40 * 10: b"{not json", 40 * 30: orjson.dumps(unstorable)}
    poison_offsets: list[tuple[int, int]] = []

    async def keep_producing() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for begin in range(0, total, 40):
                if begin in poison:
                    meta = await producer.send_and_wait(env.topic(topics.METRICS), poison[begin], key=b"x")
                    poison_offsets.append((meta.partition, meta.offset))
                sent = [
                    await producer.send(
                        env.topic(topics.METRICS), s.to_bytes(), key=topics.server_key(s.server_id)
                    )
                    for s in samples[begin : begin + 40]
                ]
                await asyncio.gather(*sent)
                await asyncio.sleep(0.05)
        finally:
            await producer.stop()

    worker = _start_worker(env, app_id, log)
    producing = asyncio.create_task(keep_producing())
    try:
        await wait_until(
            _alive_and_at_least(worker, database_url, servers, total // 4), timeout=90, what="a quarter"
        )
        # Killed mid-batch: the moment the worker is seen inside a batch's open transaction.
        await _until_in_transaction(database_url, app_id, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        persisted_at_kill = (await count_metrics(database_url, servers))[0]
        await producing
        assert persisted_at_kill < total, "the kill came too late to land mid-stream"

        worker = _start_worker(env, app_id, log)
        await wait_until(
            _alive_and_at_least(worker, database_url, servers, total), timeout=90, what="every sample"
        )
        await wait_until(
            lambda: _offsets_reach(env, database_url, total + len(poison)),
            timeout=60,
            what="the seam offsets to catch up",
        )
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        producing.cancel()
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
    assert await count_metrics(database_url, servers) == (total, total)
    # Each poison message is dead-lettered (twice at most: once more if the kill came between
    # its dead letter and the commit), none is lost.
    letters = await _dead_letters(env)
    assert set(poison_offsets) <= letters, (poison_offsets, letters)


async def _dead_letters(env: PersistEnv) -> set[tuple[int, int]]:
    """The (partition, offset) of every dead letter from the metrics topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=env.common.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        await read_from_beginning(consumer, env.topic(topics.DEAD_LETTERS))
        found: set[tuple[int, int]] = set()
        for records in (await consumer.getmany(timeout_ms=3000)).values():
            for record in records:
                letter = DeadLetter.model_validate_json(record.value or b"")
                if letter.topic == env.topic(topics.METRICS):
                    found.add((letter.partition, letter.offset))
        return found
    finally:
        await consumer.stop()


def _alive_and_at_least(worker: subprocess.Popen[bytes], dsn: str, servers: list[uuid.UUID], n: int):
    async def check() -> bool:
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        return (await count_metrics(dsn, servers))[0] >= n

    return check


async def _until_in_transaction(dsn: str, app_id: str, timeout: float) -> None:
    """Return the moment a connection of the worker is inside a transaction (a batch's write)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
                (app_id,),
            )
            row = await cur.fetchone()
            if row is not None and row[0]:
                return
            await asyncio.sleep(0.005)
    raise AssertionError("the worker was never seen inside a batch's transaction")


async def _offsets_reach(env: PersistEnv, dsn: str, total: int) -> bool:
    found = await scalar(
        dsn,
        "SELECT sum(last_offset + 1) FROM persisted_offsets WHERE topic = %s",
        (env.topic(topics.METRICS),),
    )
    return found is not None and int(found) == total
