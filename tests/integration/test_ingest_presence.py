"""Presence across processes and dead peers: a newer socket on another ingest process closes the
older one, and protocol-level pings close a peer that stopped answering."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from schemas import topics
from schemas.settings import CommonSettings
from tests.integration.test_ingest_socket import (
    authed,
    closed_with,
    command,
    make_settings,
    metrics_frame,
    publish,
    recv,
    topic,
)
from tests.support.ingest_harness import RunningIngest, TopicReader, create_key

pytestmark = pytest.mark.timeout(120)


async def test_a_newer_socket_on_another_process_takes_over(common_settings: CommonSettings) -> None:
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with (
        RunningIngest(make_settings(common_settings, presence_interval=0.3)) as first,
        RunningIngest(make_settings(common_settings, presence_interval=0.3)) as second,
        TopicReader(common_settings.kafka_bootstrap, topic(common_settings, topics.AGENT_EVENTS)) as events,
        TopicReader(
            common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
        ) as results,
    ):
        old = await authed(first, key)
        new = await authed(second, key)
        # The first process sees its row taken over at its next presence refresh.
        assert await closed_with(old, within=15) == 4000
        mine = str(key.server_id)
        [gone] = await events.wait_for(lambda v: v["server_id"] == mine and v["event"] == "disconnected")
        assert gone["superseded"] is True and gone["ingest_id"] == first.settings.ingest_id
        # Commands now reach the agent through the second process, answered once.
        await new.send(metrics_frame(key, seq=1))
        assert await recv(new) == {"type": "ack", "seq": 1}
        request = command(key.server_id, "shell", command="hostname")
        await publish(common_settings, request)
        frame = await recv(new)
        assert frame == {"type": "command", "command_id": str(request.command_id), "command": "hostname"}
        reply = {
            "type": "command_response",
            "command_id": str(request.command_id),
            "output": "h",
            "exit_code": 0,
        }
        await new.send(orjson.dumps(reply).decode())
        await results.wait_for(lambda v: v["command_id"] == str(request.command_id))
        await results.drain(quiet=1.0)
        assert len([v for _, v in results.records if v["command_id"] == str(request.command_id)]) == 1
        await new.close()


async def test_a_peer_that_stops_answering_pings_is_dropped(common_settings: CommonSettings) -> None:
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    settings = make_settings(common_settings, ws_ping_interval=0.3, ws_ping_timeout=0.5, idle_timeout=600)
    async with (
        RunningIngest(settings) as running,
        TopicReader(common_settings.kafka_bootstrap, topic(common_settings, topics.AGENT_EVENTS)) as events,
    ):
        ws = await authed(running, key)
        # The peer goes silent at the TCP level: it reads nothing, so it never answers a ping.
        ws.transport.pause_reading()
        mine = str(key.server_id)
        [gone] = await events.wait_for(
            lambda v: v["server_id"] == mine and v["event"] == "disconnected", within=30
        )
        assert gone["superseded"] is False
        assert running.metric("fleetpulse_ingest_connections") == 0
        ws.transport.abort()
        await asyncio.sleep(0)


async def test_shutdown_closes_sockets_and_answers_their_commands(common_settings: CommonSettings) -> None:
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
    ) as results:
        async with RunningIngest(make_settings(common_settings)) as running:
            ws = await authed(running, key)
            await ws.send(metrics_frame(key, seq=1))
            assert await recv(ws) == {"type": "ack", "seq": 1}
            request = command(key.server_id, "shell", command="sleep 60")
            await publish(common_settings, request)
            assert (await recv(ws))["command_id"] == str(request.command_id)
        # The process is gone: the socket was closed as "may reconnect", the command answered.
        assert await closed_with(ws) in (1001, 1012)
        [result] = await results.wait_for(lambda v: v["command_id"] == str(request.command_id))
        assert result["success"] is False and "disconnected" in result["error"]
