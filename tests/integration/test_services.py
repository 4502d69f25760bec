"""The services are real: a Kafka broker that round-trips messages, a PostgreSQL with TimescaleDB."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ops import migrate
from ops.topics import ensure_topics
from schemas import topics

pytestmark = __import__("pytest").mark.timeout(120)


async def test_a_produced_message_is_consumed_back(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = topics.METRICS.name(topic_prefix)
    key = topics.server_key(uuid.uuid4())
    value = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    # The message sits in the partition our own partition function predicts: readers rely on it.
    assert meta.partition == topics.partition_for_key(key, 4)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert (record.key, record.value, record.offset) == (key, value, meta.offset)


async def test_topics_are_created_once_with_their_policies(kafka_bootstrap: str, topic_prefix: str) -> None:
    # The session fixture created them; a second run creates nothing.
    assert await ensure_topics(kafka_bootstrap, topic_prefix, 4) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topics.METRICS.name(topic_prefix)])
        assert len(described[0]["partitions"]) == 4
        rules = topics.ALERT_RULES.name(topic_prefix)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, rules)])
        entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
        assert entries["cleanup.policy"] == "compact"
    finally:
        await admin.close()


def test_hypertables_exist(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables").fetchall()
    assert {"metrics", "metric_disks", "metric_interfaces", "logs"} <= {r[0] for r in rows}


def test_migrations_run_twice(database_url: str) -> None:
    assert migrate.apply(database_url) == []
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count is not None and count[0] == len(migrate.discover())


def test_time_bucket_returns_the_expected_buckets(database_url: str) -> None:
    server = uuid.uuid4()
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    # Minute 0: 10, 20 -> avg 15; minute 1: 30 -> 30; minute 3: 40, 50, 60 -> 50.
    samples = [(0, 10), (30, 20), (60, 30), (180, 40), (200, 50), (230, 60)]
    with psycopg.connect(database_url) as conn:
        with conn.cursor().copy(
            "COPY metrics (server_id, time, cpu_percent, memory_percent) FROM STDIN"
        ) as copy:
            for seconds, cpu in samples:
                copy.write_row((server, t0 + timedelta(seconds=seconds), cpu, 1.0))
        rows = conn.execute(
            """SELECT time_bucket('1 minute', time) AS b, avg(cpu_percent), count(*)
               FROM metrics WHERE server_id = %s GROUP BY b ORDER BY b""",
            (server,),
        ).fetchall()
    assert rows == [
        (t0, 15.0, 2),
        (t0 + timedelta(minutes=1), 30.0, 1),
        (t0 + timedelta(minutes=3), 50.0, 3),
    ]


def test_the_same_sample_twice_leaves_one_row(database_url: str) -> None:
    server = uuid.uuid4()
    t = datetime(2025, 3, 2, tzinfo=UTC)
    with psycopg.connect(database_url) as conn:
        for _ in range(2):
            conn.execute(
                """INSERT INTO metrics (server_id, time, cpu_percent, memory_percent) VALUES (%s, %s, 1, 2)
                   ON CONFLICT (server_id, time) DO NOTHING""",
                (server, t),
            )
        count = conn.execute("SELECT count(*) FROM metrics WHERE server_id = %s", (server,)).fetchone()
    assert count == (1,)
