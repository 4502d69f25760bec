"""A command's answer Kafka cannot take in time (issue 12): the agent gets a `retry` error, and its
resend must be matched to the command and stored; an answer never resent still gets the command's
failure result. Both dialects, on the real broker.

The broker advertises its own address, so a TCP proxy in front of it would only see the bootstrap
connection; instead the command-results topic of a private topic namespace is deleted under the
running ingest (auto-creation is off), which makes every produce to it fail until it is created
again (the same way `test_ingest_kafka_outage.py` cuts the metrics topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from websockets.asyncio.client import ClientConnection, connect

from ops.topics import ensure_topics
from schemas import topics
from schemas.canonical import CommandRequest
from schemas.settings import CommonSettings
from tests.conftest import TEST_PARTITIONS
from tests.integration.test_ingest_socket import authed, command, make_settings, metrics_frame, publish, recv
from tests.support.ingest_harness import Key, RunningIngest, TopicReader, create_key
from tests.support.topics import sub_prefix

pytestmark = pytest.mark.timeout(240)

LEGACY_METRICS = (
    '{"type": "metrics", "data": {"server_id": "uuid", "timestamp": "2025-12-12T15:03:25+02:00",'
    ' "cpu": {"usage_percent": 12.5, "cores": 1, "frequency_mhz": 2400},'
    ' "memory": {"total_gb": 15.54, "used_gb": 6.21, "available_gb": 8.97, "usage_percent": 39.9},'
    ' "disk": {"total_gb": 97.87, "used_gb": 41.3, "available_gb": 51.55, "usage_percent": 44.5},'
    ' "network": {"bytes_sent": 1, "bytes_recv": 2, "packets_sent": 3, "packets_recv": 4},'
    ' "containers": null, "processes": []}}'
)
OUTPUT = " 10:00 up 2 days"


class Stack:
    """An ingest on a topic namespace of its own, whose results topic the test can take away."""

    def __init__(self, common: CommonSettings, key: Key, admin: AIOKafkaAdminClient) -> None:
        self.common = common
        self.key = key
        self.admin = admin
        self.results = topics.COMMAND_RESULTS.name(common.topic_prefix)

    async def delete_results(self) -> None:
        await self.admin.delete_topics([self.results])
        async with asyncio.timeout(60):
            while self.results in await self.admin.list_topics():
                await asyncio.sleep(0.2)

    async def restore_results(self) -> None:
        async with asyncio.timeout(60):
            while True:
                try:
                    await ensure_topics(
                        self.common.kafka_bootstrap, self.common.topic_prefix, TEST_PARTITIONS
                    )
                    return
                except Exception:  # the deletion may still be in progress
                    await asyncio.sleep(0.5)


@pytest.fixture
async def stack(common_settings: CommonSettings) -> AsyncIterator[Stack]:
    prefix = sub_prefix("cmd-retry")
    await ensure_topics(common_settings.kafka_bootstrap, prefix, TEST_PARTITIONS)
    common = common_settings.model_copy(update={"topic_prefix": prefix})
    key = await create_key(common.database_url, common.key_pepper.get_secret_value())
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap)
    await admin.start()
    try:
        yield Stack(common, key, admin)
    finally:
        await admin.close()


async def connect_agent(running: RunningIngest, key: Key, dialect: str) -> ClientConnection:
    if dialect == "seed":
        ws = await authed(running, key)
        await ws.send(metrics_frame(key, seq=1))
        assert await recv(ws) == {"type": "ack", "seq": 1}
        return ws
    ws = await connect(running.ws_url)
    await ws.send(orjson.dumps({"type": "auth", "api_key": key.plaintext}).decode())
    assert (await recv(ws))["type"] == "auth_success"
    await ws.send(LEGACY_METRICS)
    assert await recv(ws) == {"type": "metrics_received", "status": "ok"}
    return ws


async def take_command(ws: ClientConnection, stack: Stack, request: CommandRequest, dialect: str) -> None:
    await publish(stack.common, request)
    frame = await recv(ws)
    assert frame[("request_id" if dialect == "legacy" else "command_id")] == str(request.command_id)


def answer(request: CommandRequest, dialect: str) -> str:
    frame: dict[str, Any]
    if dialect == "legacy":
        frame = {
            "type": "command_result",
            "data": {"output": OUTPUT, "exit_code": 0},
            "request_id": str(request.command_id),
        }
    else:
        frame = {
            "type": "command_response",
            "seq": 2,
            "command_id": str(request.command_id),
            "output": OUTPUT,
            "exit_code": 0,
            "duration_ms": 7,
        }
    return orjson.dumps(frame).decode()


async def answer_refused(ws: ClientConnection, request: CommandRequest, dialect: str) -> None:
    """The answer, sent while the results topic is gone: a `retry` error, never an ack."""
    await ws.send(answer(request, dialect))
    reply = await recv(ws, within=30)
    assert reply["type"] == "error" and reply["code"] == "retry" and reply["retry"] is True
    assert reply.get("seq") == (None if dialect == "legacy" else 2)


@pytest.mark.parametrize("dialect", ["seed", "legacy"])
async def test_an_answer_kafka_did_not_take_is_stored_when_the_agent_resends_it(
    stack: Stack, dialect: str
) -> None:
    settings = make_settings(stack.common, produce_timeout=2.0, command_resend_grace=60.0)
    async with RunningIngest(settings) as running:
        ws = await connect_agent(running, stack.key, dialect)
        request = command(stack.key.server_id, "shell", command="uptime", timeout_seconds=60)
        await take_command(ws, stack, request, dialect)
        await stack.delete_results()
        await answer_refused(ws, request, dialect)
        await stack.restore_results()

        # The agent sends its answer again until it is taken: an ack (seed), or no `retry` error
        # within the produce timeout (legacy: it has no acks for command results).
        async with asyncio.timeout(120):
            while True:
                await ws.send(answer(request, dialect))
                try:
                    reply = await recv(ws, within=settings.produce_timeout + 3)
                except TimeoutError:
                    assert dialect == "legacy", "no ack and no retry error for the resent answer"
                    break
                if reply == {"type": "ack", "seq": 2}:
                    break
                assert reply["code"] == "retry", reply
        async with TopicReader(stack.common.kafka_bootstrap, stack.results) as reader:
            found = await reader.wait_for(lambda v: v["command_id"] == str(request.command_id))
            await reader.drain(quiet=2.0)
            stored = [v for _, v in reader.records if v["command_id"] == str(request.command_id)]
        # Every copy is the agent's answer, identical (one row per command downstream); no
        # timeout or failure result was decided instead.
        assert found and all(v == found[0] for v in stored), stored
        assert found[0]["success"] is True and found[0]["output"] == OUTPUT
        assert running.metric("fleetpulse_ingest_commands_total", outcome="unmatched_reply") == 0
        await ws.close()


async def test_an_answer_never_resent_still_gets_the_commands_failure_result(stack: Stack) -> None:
    settings = make_settings(stack.common, produce_timeout=2.0, command_resend_grace=3.0)
    async with RunningIngest(settings) as running:
        ws = await connect_agent(running, stack.key, "seed")
        request = command(stack.key.server_id, "shell", command="uptime", timeout_seconds=15)
        await take_command(ws, stack, request, "seed")
        await stack.delete_results()
        await answer_refused(ws, request, "seed")
        await stack.restore_results()
        async with TopicReader(stack.common.kafka_bootstrap, stack.results) as reader:
            [result] = await reader.wait_for(lambda v: v["command_id"] == str(request.command_id), within=60)
        assert result["success"] is False
        assert result["error"] == "the agent's answer could not be stored and was not sent again"
        assert running.metric("fleetpulse_ingest_commands_total", outcome="failed") == 1
        await ws.close()
