"""The legacy ChatOps dialect, replayed byte for byte from its spec against a real ingest server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from schemas import topics
from schemas.agent_wire import GIB
from schemas.settings import CommonSettings
from tests.integration.test_ingest_socket import closed_with, command, make_settings, publish, recv, topic
from tests.support.ingest_harness import Key, RunningIngest, TopicReader, create_key

pytestmark = pytest.mark.timeout(120)

# The spec's metrics frame, exactly as printed there (its `server_id` is the literal "uuid": the
# agent's copy is informational, the key decides the server).
SPEC_METRICS = """{"type": "metrics", "data": {
  "server_id": "uuid", "timestamp": "2025-12-12T15:03:25+02:00",
  "cpu": {"usage_percent": 12.5, "cores": 1, "frequency_mhz": 2400},
  "memory": {"total_gb": 15.54, "used_gb": 6.21, "available_gb": 8.97, "usage_percent": 39.9},
  "disk": {"total_gb": 97.87, "used_gb": 41.3, "available_gb": 51.55, "usage_percent": 44.5},
  "network": {"bytes_sent": 123456789, "bytes_recv": 987654321, "packets_sent": 345678, "packets_recv": 456789},
  "containers": [{"id": "a1b2c3d4e5f6", "name": "web", "image": "nginx:latest", "status": "Up 2 hours",
                  "state": "running", "created": "2025-12-10T08:00:00+02:00",
                  "ports": [{"private_port": 80, "public_port": 8080, "type": "tcp"}]}],
  "processes": [{"pid": 1234, "name": "python3", "cpu": 3.2, "memory": 85.4, "status": "sleep", "user": "www-data"}]
}}"""  # noqa: E501 - the spec's frame, verbatim

# Whole numbers without a decimal point, keys in another order, no Docker: as the agent sends it.
SPEC_METRICS_NO_DOCKER = (
    '{"data":{"timestamp":"2025-12-12T15:03:30+02:00","server_id":"uuid","containers":null,"processes":[],'
    '"network":{"bytes_recv":987654400,"bytes_sent":123456800,"packets_recv":456800,"packets_sent":345700},'
    '"memory":{"usage_percent":40,"available_gb":9,"used_gb":6,"total_gb":16},'
    '"disk":{"usage_percent":44,"available_gb":51,"used_gb":41,"total_gb":98},'
    '"cpu":{"frequency_mhz":2400,"cores":1,"usage_percent":12}},"type":"metrics"}'
)

AUTH = '{"type": "auth", "api_key": "%s"}'
RECEIVED = {"type": "metrics_received", "status": "ok"}


@pytest.fixture
async def ingest(common_settings: CommonSettings) -> AsyncIterator[RunningIngest]:
    async with RunningIngest(make_settings(common_settings)) as running:
        yield running


@pytest.fixture
async def key(common_settings: CommonSettings) -> Key:
    return await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())


async def legacy_agent(running: RunningIngest, key: Key) -> ClientConnection:
    ws = await connect(running.ws_url)
    await ws.send(AUTH % key.plaintext)
    reply = await recv(ws)
    assert reply["type"] == "auth_success" and reply["server_id"] == str(key.server_id)
    return ws


async def test_preflight_answers_the_key_or_401(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    pepper = common_settings.key_pepper.get_secret_value()
    inactive = await create_key(common_settings.database_url, pepper, is_active=False)
    expired = await create_key(common_settings.database_url, pepper, expired=True)
    async with httpx.AsyncClient(base_url=ingest.http_url) as client:
        ok = await client.get("/api/v1/api-keys/me", headers={"X-API-Key": key.plaintext})
        assert ok.status_code == 200
        assert ok.json() == {
            "server_id": str(key.server_id),
            "key_id": str(key.key_id),
            "name": "test key",
            "is_active": True,
        }
        for bad in (inactive.plaintext, expired.plaintext, "fpk_AAAAAAAAAAAA_" + "A" * 43):
            refused = await client.get("/api/v1/api-keys/me", headers={"X-API-Key": bad})
            assert refused.status_code == 401
            # Problem details, with the seed's text kept as `detail` (what the legacy agent prints).
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json() == {
                "type": "/problems/unauthorized",
                "title": "Not authenticated",
                "status": 401,
                "detail": "Invalid or inactive API key",
                "instance": "/api/v1/api-keys/me",
            }
        assert (await client.get("/api/v1/api-keys/me")).status_code == 401


async def test_spec_metrics_are_acknowledged_within_5s_and_land_canonical(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(common_settings.kafka_bootstrap, topic(common_settings, topics.METRICS)) as reader:
        ws = await legacy_agent(ingest, key)
        for frame in (SPEC_METRICS, SPEC_METRICS_NO_DOCKER):
            await ws.send(frame)
            assert await recv(ws, within=5.0) == RECEIVED  # the agent's own deadline
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}
        mine = str(key.server_id)
        first, second = await reader.wait_for(lambda v: v["server_id"] == mine, count=2)
        assert first["time"] == "2025-12-12T13:03:25Z"
        assert first["cpu_percent"] == 12.5 and first["cpu_cores"] == 1
        assert first["memory_total_bytes"] == round(15.54 * GIB)
        assert first["disks"] == [
            {
                "mount": "/",
                "total_bytes": round(97.87 * GIB),
                "used_bytes": round(41.3 * GIB),
                "free_bytes": round(51.55 * GIB),
                "percent": 44.5,
            }
        ]
        assert first["interfaces"][0]["interface"] == "all"
        assert first["interfaces"][0]["bytes_recv"] == 987654321
        assert first["containers"][0]["name"] == "web"
        assert first["processes"][0]["pid"] == 1234
        assert second["containers"] is None and second["memory_total_bytes"] == 16 * GIB
        await ws.close()
    assert ingest.metric("fleetpulse_ingest_acks_total", dialect="legacy") == 2


async def test_legacy_commands_echo_request_id_one_at_a_time(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
    ) as reader:
        ws = await legacy_agent(ingest, key)
        # Published before the dialect is known: held, never guessed.
        shell = command(key.server_id, "shell", command="uptime")
        await publish(common_settings, shell)
        async with asyncio.timeout(15):
            while ingest.metric("fleetpulse_ingest_commands_total", outcome="seen") < 1:
                await asyncio.sleep(0.05)
        assert ingest.metric("fleetpulse_ingest_commands_total", outcome="delivered") == 0
        await ws.send(SPEC_METRICS)
        frames = [await recv(ws), await recv(ws)]
        assert RECEIVED in frames
        [execute] = [f for f in frames if f != RECEIVED]
        assert execute == {
            "type": "execute_command",
            "request_id": str(shell.command_id),
            "command": "uptime",
        }

        # The container commands, queued behind the shell command: one in flight at a time.
        start = command(key.server_id, "start", container_id="a1b2c3d4e5f6")
        stop = command(key.server_id, "stop", container_id="a1b2c3d4e5f6")
        restart = command(key.server_id, "restart", container_id="a1b2c3d4e5f6")
        logs = command(key.server_id, "logs", container_id="a1b2c3d4e5f6", tail=50)
        for request in (start, stop, restart, logs):
            await publish(common_settings, request)
        async with asyncio.timeout(15):
            while ingest.metric("fleetpulse_ingest_commands_total", outcome="seen") < 5:
                await asyncio.sleep(0.05)
        assert ingest.metric("fleetpulse_ingest_commands_total", outcome="delivered") == 1

        replies: list[tuple[dict[str, Any], str]] = [
            ({"type": "start_container", "container_id": "a1b2c3d4e5f6"}, "container_started"),
            ({"type": "stop_container", "container_id": "a1b2c3d4e5f6"}, "container_stopped"),
            ({"type": "restart_container", "container_id": "a1b2c3d4e5f6"}, "container_restarted"),
            ({"type": "get_container_logs", "container_id": "a1b2c3d4e5f6", "tail": 50}, "container_logs"),
        ]
        await ws.send(
            '{"type": "command_result", "data": {"output": " 10:00 up 2 days", "exit_code": 0},'
            f' "request_id": "{shell.command_id}"}}'
        )
        for request, (expected, reply_type) in zip((start, stop, restart, logs), replies, strict=True):
            frame = await recv(ws)
            assert frame == {**expected, "request_id": str(request.command_id)}
            if reply_type == "container_logs":
                data: dict[str, Any] = {"container_id": "a1b2c3d4e5f6", "logs": ["line 1", "line 2"]}
            else:
                data = {"container_id": "a1b2c3d4e5f6", "status": reply_type.removeprefix("container_")}
            await ws.send(
                orjson.dumps({"type": reply_type, "data": data, "request_id": frame["request_id"]}).decode()
            )
        ids = {str(r.command_id): r for r in (shell, start, stop, restart, logs)}
        results = {
            v["command_id"]: v for v in await reader.wait_for(lambda v: v["command_id"] in ids, count=5)
        }
        assert results[str(shell.command_id)]["output"] == " 10:00 up 2 days"
        assert results[str(shell.command_id)]["exit_code"] == 0
        assert all(r["success"] for r in results.values())
        assert results[str(logs.command_id)]["logs"] == ["line 1", "line 2"]

        # A failure comes back as an error frame carrying the request_id.
        failing = command(key.server_id, "stop", container_id="nope")
        await publish(common_settings, failing)
        frame = await recv(ws)
        assert frame["type"] == "stop_container" and frame["request_id"] == str(failing.command_id)
        await ws.send(
            f'{{"type": "error", "message": "No such container: nope", "request_id": "{failing.command_id}"}}'
        )
        [result] = await reader.wait_for(lambda v: v["command_id"] == str(failing.command_id))
        assert result["success"] is False and result["error"] == "No such container: nope"
        await ws.close()


async def test_a_failed_legacy_auth_is_just_a_1008_close(ingest: RunningIngest) -> None:
    async with connect(ingest.ws_url) as ws:
        await ws.send(AUTH % ("fpk_AAAAAAAAAAAA_" + "B" * 43))
        assert await recv(ws) == {"type": "error", "message": "Invalid or inactive API key"}
        assert await closed_with(ws) == 1008


async def test_a_timed_out_legacy_command_keeps_the_slot_until_its_late_answer(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
    ) as reader:
        ws = await legacy_agent(ingest, key)
        await ws.send(SPEC_METRICS)
        assert await recv(ws) == RECEIVED
        slow = command(key.server_id, "shell", command="sleep 100", timeout_seconds=0.5)
        after = command(key.server_id, "shell", command="uptime")
        await publish(common_settings, slow)
        assert (await recv(ws))["request_id"] == str(slow.command_id)
        await publish(common_settings, after)
        [timed_out] = await reader.wait_for(lambda v: v["command_id"] == str(slow.command_id))
        assert timed_out["success"] is False and "timed out" in timed_out["error"]
        async with asyncio.timeout(15):
            while ingest.metric("fleetpulse_ingest_commands_total", outcome="seen") < 2:
                await asyncio.sleep(0.05)
        # The agent may still be running it: the next command waits.
        assert ingest.metric("fleetpulse_ingest_commands_total", outcome="delivered") == 1
        late = {
            "type": "command_result",
            "data": {"output": "", "exit_code": 0},
            "request_id": str(slow.command_id),
        }
        await ws.send(orjson.dumps(late).decode())
        assert await recv(ws) == {
            "type": "execute_command",
            "request_id": str(after.command_id),
            "command": "uptime",
        }
        await reader.drain(quiet=1.0)
        assert len([v for _, v in reader.records if v["command_id"] == str(slow.command_id)]) == 1
        assert ingest.metric("fleetpulse_ingest_commands_total", outcome="late_reply") == 1
        await ws.close()
