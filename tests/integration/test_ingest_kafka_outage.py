"""Kafka cannot take a frame in time: the agent gets an error that says to retry and no ack,
never a silent drop; when the topic is back, frames are acknowledged again.

The broker advertises its own address, so a TCP proxy cannot cut it; instead the metrics topic of
a private topic namespace is deleted under the running ingest (auto-creation is off), which makes
every produce to it fail until it is created again.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ops.topics import ensure_topics
from schemas import topics
from schemas.settings import CommonSettings
from tests.conftest import TEST_PARTITIONS
from tests.integration.test_ingest_socket import authed, make_settings, metrics_frame, recv
from tests.support.ingest_harness import RunningIngest, TopicReader, create_key
from tests.support.topics import sub_prefix

pytestmark = pytest.mark.timeout(180)


async def test_no_ack_and_a_retry_error_while_kafka_cannot_take_the_frame(
    common_settings: CommonSettings,
) -> None:
    prefix = sub_prefix("outage")
    await ensure_topics(common_settings.kafka_bootstrap, prefix, TEST_PARTITIONS)
    common = common_settings.model_copy(update={"topic_prefix": prefix})
    key = await create_key(common.database_url, common.key_pepper.get_secret_value())
    metrics_topic = topics.METRICS.name(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap)
    await admin.start()
    try:
        async with RunningIngest(make_settings(common, produce_timeout=2.0)) as running:
            ws = await authed(running, key)
            await ws.send(metrics_frame(key, seq=1))
            assert await recv(ws) == {"type": "ack", "seq": 1}

            await admin.delete_topics([metrics_topic])
            async with asyncio.timeout(60):
                while metrics_topic in await admin.list_topics():
                    await asyncio.sleep(0.2)
            await ws.send(metrics_frame(key, seq=2))
            reply = await recv(ws, within=30)
            assert reply["type"] == "error" and reply["code"] == "retry" and reply["retry"] is True
            assert reply["seq"] == 2  # names the frame to send again; no ack for it ever came
            assert running.metric("fleetpulse_ingest_acks_total", dialect="seed") == 1

            # Kafka can take frames again: the agent's resend is acknowledged and stored.
            async with asyncio.timeout(60):
                while True:
                    try:
                        await ensure_topics(common.kafka_bootstrap, prefix, TEST_PARTITIONS)
                        break
                    except Exception:  # the deletion may still be in progress
                        await asyncio.sleep(0.5)
            async with asyncio.timeout(90):
                while True:
                    await ws.send(metrics_frame(key, seq=2))
                    reply = await recv(ws, within=30)
                    if reply == {"type": "ack", "seq": 2}:
                        break
                    assert reply["code"] == "retry"
            async with TopicReader(common.kafka_bootstrap, metrics_topic) as reader:
                found = await reader.wait_for(lambda v: v["server_id"] == str(key.server_id))
                assert found[0]["seq"] == 2
            await ws.close()
    finally:
        await admin.close()
