"""The topic namespace of a test session: every topic a test creates starts with `SESSION_PREFIX`,
so the session deletes them all at its end and a developer's broker does not collect them run
after run (tens of thousands of leftover partitions once exhausted the broker's open files)."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

SESSION_PREFIX = f"test-{uuid.uuid4().hex[:8]}."


def sub_prefix(name: str) -> str:
    """A namespace of its own for one test or module, inside the session's."""
    return f"{SESSION_PREFIX}{name}-{uuid.uuid4().hex[:8]}."


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with `prefix` (faust's internal topics included)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def read_from_beginning(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of `topic` to a started consumer without a group, from offset 0."""
    cluster = await consumer._client.fetch_all_metadata()
    tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return tps
