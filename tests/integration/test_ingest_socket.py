"""The agent socket, seed dialect: a real uvicorn server, a real WebSocket client over loopback,
and what landed in the real Kafka read back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ingest.settings import IngestSettings
from schemas import topics
from schemas.canonical import CommandRequest, KeyRevocation
from schemas.settings import CommonSettings
from tests.support.ingest_harness import Key, RunningIngest, TopicReader, create_key, kafka_producer

pytestmark = pytest.mark.timeout(120)


def make_settings(common: CommonSettings, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "common": common,
        "ingest_id": f"test-{uuid.uuid4().hex[:6]}",
        "presence_interval": 0.5,
        "produce_timeout": 10.0,
    }
    values.update(overrides)
    return IngestSettings(**values)


@pytest.fixture
async def ingest(common_settings: CommonSettings) -> AsyncIterator[RunningIngest]:
    async with RunningIngest(make_settings(common_settings)) as running:
        yield running


@pytest.fixture
async def key(common_settings: CommonSettings) -> Key:
    return await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())


async def recv(ws: ClientConnection, within: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        value: dict[str, Any] = orjson.loads(await ws.recv())
        return value


async def closed_with(ws: ClientConnection, within: float = 15.0) -> int:
    """Read until the server closes; returns the close code it sent."""
    async with asyncio.timeout(within):
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
    assert info.value.rcvd is not None, "the server sent no close frame"
    return info.value.rcvd.code


async def authed(running: RunningIngest, key: Key) -> ClientConnection:
    ws = await connect(running.ws_url, max_size=None)
    await ws.send(orjson.dumps({"type": "auth", "api_key": key.plaintext}).decode())
    reply = await recv(ws)
    assert reply == {
        "type": "auth_success",
        "server_id": str(key.server_id),
        "message": "Connected successfully",
    }
    return ws


def metrics_frame(key: Key, seq: int | None, cpu: float = 45.2) -> str:
    frame: dict[str, Any] = {
        "type": "metrics",
        "server_id": str(key.server_id),
        "cpu_percent": cpu,
        "memory_percent": 62.5,
        "disk_usage": [{"path": "/", "total": 1000, "used": 400, "free": 600, "percent": 40.0}],
        "network": [{"interface": "eth0", "bytes_sent": 10, "bytes_recv": 20}],
        "timestamp": "2024-01-01T00:00:00Z",
        "load_average": [1.0, 0.5, 0.25],
        "uptime_seconds": 100,
    }
    if seq is not None:
        frame["seq"] = seq
    return orjson.dumps(frame).decode()


def topic(common: CommonSettings, spec: topics.TopicSpec) -> str:
    return spec.name(common.topic_prefix)


async def test_metrics_are_acked_only_once_in_kafka(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    bootstrap = common_settings.kafka_bootstrap
    async with TopicReader(bootstrap, topic(common_settings, topics.METRICS)) as reader:
        ws = await authed(ingest, key)
        await ws.send(metrics_frame(key, seq=1))
        assert await recv(ws) == {"type": "ack", "seq": 1}
        # The ack came first; the sample must already be readable from Kafka.
        found = await reader.wait_for(lambda v: v["server_id"] == str(key.server_id) and v["seq"] == 1)
        assert found[0]["cpu_percent"] == 45.2
        assert found[0]["disks"][0] == {
            "mount": "/",
            "total_bytes": 1000,
            "used_bytes": 400,
            "free_bytes": 600,
            "percent": 40.0,
        }
        assert found[0]["load1"] == 1.0 and found[0]["time"] == "2024-01-01T00:00:00Z"
        key_bytes = [
            k for k, v in reader.records if v.get("seq") == 1 and v["server_id"] == str(key.server_id)
        ]
        assert key_bytes[0] == str(key.server_id).encode()
        # Pipelined: many frames in a row, all acked in order, each exactly once.
        for seq in range(2, 52):
            await ws.send(metrics_frame(key, seq=seq))
        acks = [await recv(ws) for _ in range(50)]
        assert acks == [{"type": "ack", "seq": seq} for seq in range(2, 52)]
        # Without a seq a frame is stored but not acknowledged (nothing to name it by).
        await ws.send(metrics_frame(key, seq=None, cpu=77.0))
        await reader.wait_for(lambda v: v["server_id"] == str(key.server_id) and v["cpu_percent"] == 77.0)
        await ws.send('{"type": "ping"}')
        assert await recv(ws) == {"type": "pong"}
        await ws.close()
    assert ingest.metric("fleetpulse_ingest_acks_total", dialect="seed") == 51
    assert ingest.metric("fleetpulse_ingest_frames_total", type="metrics") == 52


async def test_connection_events(ingest: RunningIngest, key: Key, common_settings: CommonSettings) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.AGENT_EVENTS)
    ) as reader:
        ws = await authed(ingest, key)
        await ws.send(metrics_frame(key, seq=1))
        await recv(ws)
        await ws.close()
        mine = str(key.server_id)
        [connected] = await reader.wait_for(lambda v: v["server_id"] == mine and v["event"] == "connected")
        [gone] = await reader.wait_for(lambda v: v["server_id"] == mine and v["event"] == "disconnected")
        assert connected["connection_id"] == gone["connection_id"]
        assert connected["ingest_id"] == ingest.settings.ingest_id
        assert gone["superseded"] is False and gone["dialect"] == "seed" and gone["reason"]


@pytest.mark.parametrize("kind", ["unknown", "inactive", "expired", "malformed"])
async def test_refused_keys_get_the_seed_error_and_1008(
    ingest: RunningIngest, common_settings: CommonSettings, kind: str
) -> None:
    pepper = common_settings.key_pepper.get_secret_value()
    if kind == "inactive":
        plaintext = (await create_key(common_settings.database_url, pepper, is_active=False)).plaintext
    elif kind == "expired":
        plaintext = (await create_key(common_settings.database_url, pepper, expired=True)).plaintext
    elif kind == "unknown":
        plaintext = "fpk_AAAAAAAAAAAA_" + "B" * 43
    else:
        plaintext = "not-a-key"
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.AGENT_EVENTS)
    ) as reader:
        async with connect(ingest.ws_url) as ws:
            await ws.send(orjson.dumps({"type": "auth", "api_key": plaintext}).decode())
            assert await recv(ws) == {"type": "error", "message": "Invalid or inactive API key"}
            assert await closed_with(ws) == 1008
        await reader.wait_for(lambda v: v["event"] == "auth_failed" and v["reason"] == kind)


async def test_a_wrong_secret_for_a_real_lookup_id_is_refused(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    forged = key.plaintext[:-43] + "A" * 43
    async with connect(ingest.ws_url) as ws:
        await ws.send(orjson.dumps({"type": "auth", "api_key": forged}).decode())
        assert await recv(ws) == {"type": "error", "message": "Invalid or inactive API key"}
        assert await closed_with(ws) == 1008
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="auth_mismatch") == 1


async def test_failed_authentications_are_rate_limited_per_address(common_settings: CommonSettings) -> None:
    settings = make_settings(common_settings, auth_fail_limit=3, auth_fail_window=60)
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with RunningIngest(settings) as running:
        for _ in range(3):
            async with connect(running.ws_url) as ws:
                await ws.send('{"type": "auth", "api_key": "nope"}')
                assert (await recv(ws))["message"] == "Invalid or inactive API key"
        # Past the limit, this address's failures are answered as rate limited ...
        async with connect(running.ws_url) as ws:
            await ws.send('{"type": "auth", "api_key": "nope"}')
            reply = await recv(ws)
            assert reply["code"] == "rate_limited"
            assert await closed_with(ws) == 1008
        assert running.metric("fleetpulse_ingest_refusals_total", reason="auth_rate_limited") == 1
        # ... and a valid key from it is still served: others' failures never lock an agent out.
        async with connect(running.ws_url) as ws:
            await ws.send(orjson.dumps({"type": "auth", "api_key": key.plaintext}).decode())
            assert (await recv(ws))["type"] == "auth_success"


async def test_auth_timeout_and_non_auth_first_frame(common_settings: CommonSettings) -> None:
    async with RunningIngest(make_settings(common_settings, auth_timeout=0.5)) as running:
        async with connect(running.ws_url) as ws:
            assert await closed_with(ws) == 1008  # said nothing at all
        async with connect(running.ws_url) as ws:
            await ws.send('{"type": "ping"}')
            reply = await recv(ws)
            assert reply["message"] == "Invalid message format" and reply["code"] == "auth_required"
            assert await closed_with(ws) == 1008
        assert running.metric("fleetpulse_ingest_refusals_total", reason="auth_timeout") == 1


async def test_invalid_frames_get_an_error_and_the_socket_stays_open(ingest: RunningIngest, key: Key) -> None:
    ws = await authed(ingest, key)
    cases = [
        ("{nope", "invalid_json"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"cpu_percent": 3}', "unknown_type"),
        (
            '{"type": "metrics", "cpu_percent": "hot", "memory_percent": 1,'
            ' "timestamp": "2024-01-01T00:00:00Z"}',
            "validation",
        ),
        (
            '{"type": "metrics", "cpu_percent": 1, "memory_percent": 1, "timestamp": "2024-01-01T00:00:00"}',
            "validation",
        ),
    ]
    for raw, code in cases:
        await ws.send(raw)
        reply = await recv(ws)
        assert reply["type"] == "error" and reply["message"] == "Invalid message format"
        assert reply["code"] == code and reply["detail"]
    await ws.send(metrics_frame(key, seq=9))
    assert await recv(ws) == {"type": "ack", "seq": 9}
    await ws.close()
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="validation") == 2
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="unknown_type") == 2
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="invalid_json") == 1


async def test_a_stream_of_invalid_frames_closes_with_policy(common_settings: CommonSettings) -> None:
    settings = make_settings(common_settings, invalid_frame_limit=5, invalid_frame_window=60)
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with RunningIngest(settings) as running:
        ws = await authed(running, key)
        for _ in range(5):
            await ws.send("garbage")
        assert await closed_with(ws) == 1008
        assert running.metric("fleetpulse_ingest_refusals_total", reason="too_many_invalid") == 1


async def test_oversize_and_binary_frames_close(common_settings: CommonSettings) -> None:
    settings = make_settings(common_settings, max_frame_bytes=4096)
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with RunningIngest(settings) as running:
        ws = await authed(running, key)
        await ws.send(
            '{"type": "log", "level": "INFO", "timestamp": "2024-01-01T00:00:00Z", "message": "'
            + "x" * 5000
            + '"}'
        )
        assert await closed_with(ws) == 1009
        ws = await authed(running, key)
        await ws.send(b'{"type": "ping"}')
        assert await closed_with(ws) == 1003
        assert running.metric("fleetpulse_ingest_refusals_total", reason="too_big") == 1
        assert running.metric("fleetpulse_ingest_refusals_total", reason="binary") == 1


async def test_default_frame_limit_is_256_kib() -> None:
    assert (
        IngestSettings(common=CommonSettings(key_pepper="k" * 40, jwt_secret="j" * 40)).max_frame_bytes
        == 262144
    )


async def test_a_foreign_server_id_is_refused(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    other = uuid.uuid4()
    ws = await authed(ingest, key)
    frame = orjson.loads(metrics_frame(key, seq=4))
    frame["server_id"] = str(other)
    await ws.send(orjson.dumps(frame).decode())
    reply = await recv(ws)
    assert reply["type"] == "error" and reply["code"] == "server_id_mismatch" and reply["seq"] == 4
    await ws.send('{"type": "ping"}')
    assert await recv(ws) == {"type": "pong"}
    await ws.close()
    async with TopicReader(common_settings.kafka_bootstrap, topic(common_settings, topics.METRICS)) as reader:
        await reader.drain()
        assert not [v for _, v in reader.records if v["server_id"] == str(other)]


async def test_log_and_logs_frames(ingest: RunningIngest, key: Key, common_settings: CommonSettings) -> None:
    async with TopicReader(common_settings.kafka_bootstrap, topic(common_settings, topics.LOGS)) as reader:
        ws = await authed(ingest, key)
        await ws.send(
            '{"type": "log", "seq": 1, "level": "warn", "message": "disk filling", "source": "syslog",'
            ' "timestamp": "2024-01-01T01:00:00+01:00"}'
        )
        assert await recv(ws) == {"type": "ack", "seq": 1}
        await ws.send(
            '{"type": "logs", "seq": 2, "entries": ['
            '{"level": "INFO", "message": "a", "timestamp": "2024-01-01T00:00:01Z"},'
            '{"level": "ERROR", "message": "b", "timestamp": "2024-01-01T00:00:02Z", "source": "app"}]}'
        )
        assert await recv(ws) == {"type": "ack", "seq": 2}
        mine = str(key.server_id)
        records = await reader.wait_for(lambda v: v["server_id"] == mine, count=3)
        assert [(r["level"], r["message"], r["seq"]) for r in records] == [
            ("WARNING", "disk filling", 1),
            ("INFO", "a", 2),
            ("ERROR", "b", 2),
        ]
        assert records[0]["time"] == "2024-01-01T00:00:00Z"
        await ws.close()


async def test_the_newest_socket_wins(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.AGENT_EVENTS)
    ) as reader:
        old = await authed(ingest, key)
        new = await authed(ingest, key)
        assert await closed_with(old) == 4000
        await new.send('{"type": "ping"}')
        assert await recv(new) == {"type": "pong"}
        mine = str(key.server_id)
        [gone] = await reader.wait_for(lambda v: v["server_id"] == mine and v["event"] == "disconnected")
        assert gone["superseded"] is True
        await new.close()
        both = await reader.wait_for(
            lambda v: v["server_id"] == mine and v["event"] == "disconnected", count=2
        )
        assert both[1]["superseded"] is False


async def test_revocation_on_the_topic_closes_the_socket(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    ws = await authed(ingest, key)
    revocation = KeyRevocation(
        key_id=key.key_id, server_id=key.server_id, reason="deactivated", time=datetime.now(UTC)
    )
    async with kafka_producer(common_settings.kafka_bootstrap) as producer:
        await producer.send_and_wait(
            topic(common_settings, topics.KEY_REVOCATIONS),
            revocation.to_bytes(),
            key=str(key.key_id).encode(),
        )
    assert await closed_with(ws, within=10) == 1008


async def test_a_key_deactivated_in_the_database_closes_the_socket(common_settings: CommonSettings) -> None:
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with RunningIngest(make_settings(common_settings, key_recheck_interval=0.5)) as running:
        ws = await authed(running, key)
        async with await psycopg.AsyncConnection.connect(
            common_settings.database_url, autocommit=True
        ) as conn:
            await conn.execute("UPDATE api_keys SET is_active = false WHERE id = %s", (key.key_id,))
        assert await closed_with(ws, within=10) == 1008
        # And it cannot come back.
        async with connect(running.ws_url) as again:
            await again.send(orjson.dumps({"type": "auth", "api_key": key.plaintext}).decode())
            assert await recv(again) == {"type": "error", "message": "Invalid or inactive API key"}


async def test_idle_socket_is_closed(common_settings: CommonSettings) -> None:
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    async with RunningIngest(make_settings(common_settings, idle_timeout=0.5)) as running:
        ws = await authed(running, key)
        assert await closed_with(ws) == 1001


async def test_agent_connections_row_follows_the_socket(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async def row() -> tuple[Any, ...] | None:
        async with await psycopg.AsyncConnection.connect(common_settings.database_url) as conn:
            cur = await conn.execute(
                "SELECT ingest_id, key_id FROM agent_connections WHERE server_id = %s", (key.server_id,)
            )
            return await cur.fetchone()

    ws = await authed(ingest, key)
    assert await row() == (ingest.settings.ingest_id, key.key_id)
    await ws.close()
    async with asyncio.timeout(15):
        while await row() is not None:
            await asyncio.sleep(0.05)


def command(server_id: uuid.UUID, action: str, **fields: Any) -> CommandRequest:
    now = datetime.now(UTC)
    return CommandRequest.model_validate(
        {
            "command_id": uuid.uuid4(),
            "server_id": server_id,
            "action": action,
            "requested_at": now,
            "deadline": now + timedelta(seconds=30),
            **fields,
        }
    )


async def publish(common: CommonSettings, request: CommandRequest) -> None:
    async with kafka_producer(common.kafka_bootstrap) as producer:
        await producer.send_and_wait(
            topic(common, topics.COMMANDS), request.to_bytes(), key=topics.server_key(request.server_id)
        )


async def test_commands_are_delivered_and_answered(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
    ) as reader:
        ws = await authed(ingest, key)
        await ws.send(metrics_frame(key, seq=1))  # the dialect is known from the first metrics frame
        assert await recv(ws) == {"type": "ack", "seq": 1}
        shell = command(key.server_id, "shell", command="ls -la")
        await publish(common_settings, shell)
        assert await recv(ws) == {"type": "command", "command_id": str(shell.command_id), "command": "ls -la"}
        await ws.send(
            orjson.dumps(
                {
                    "type": "command_response",
                    "seq": 2,
                    "command_id": str(shell.command_id),
                    "output": "total 100\n",
                    "exit_code": 0,
                    "duration_ms": 150,
                }
            ).decode()
        )
        assert await recv(ws) == {"type": "ack", "seq": 2}
        [result] = await reader.wait_for(lambda v: v["command_id"] == str(shell.command_id))
        assert (
            result["success"] is True and result["output"] == "total 100\n" and result["duration_ms"] == 150
        )

        docker = command(key.server_id, "restart", container_id="abc123")
        await publish(common_settings, docker)
        assert await recv(ws) == {
            "type": "docker_command",
            "command_id": str(docker.command_id),
            "action": "restart",
            "container_id": "abc123",
        }
        await ws.send(
            orjson.dumps(
                {
                    "type": "docker_response",
                    "command_id": str(docker.command_id),
                    "success": True,
                    "message": "Container restarted",
                }
            ).decode()
        )
        [result] = await reader.wait_for(lambda v: v["command_id"] == str(docker.command_id))
        assert result["success"] is True and result["message"] == "Container restarted"

        # Disconnected mid-command: answered as failed, not left hanging.
        pending = command(key.server_id, "shell", command="sleep 100")
        await publish(common_settings, pending)
        assert (await recv(ws))["command_id"] == str(pending.command_id)
        await ws.close()
        [result] = await reader.wait_for(lambda v: v["command_id"] == str(pending.command_id))
        assert result["success"] is False and "disconnected" in result["error"]


async def test_commands_for_an_absent_agent_fail_fast(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
    ) as reader:
        request = command(key.server_id, "shell", command="uptime")
        await publish(common_settings, request)
        [result] = await reader.wait_for(lambda v: v["command_id"] == str(request.command_id))
        assert result["success"] is False and result["error"] == "agent not connected"


async def test_an_unanswered_command_times_out(
    ingest: RunningIngest, key: Key, common_settings: CommonSettings
) -> None:
    async with TopicReader(
        common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
    ) as reader:
        ws = await authed(ingest, key)
        await ws.send(metrics_frame(key, seq=1))
        await recv(ws)
        request = command(key.server_id, "shell", command="sleep 5", timeout_seconds=0.5)
        await publish(common_settings, request)
        assert (await recv(ws))["command_id"] == str(request.command_id)
        [result] = await reader.wait_for(lambda v: v["command_id"] == str(request.command_id))
        assert result["success"] is False and "timed out" in result["error"]
        await ws.close()


async def test_two_ingest_processes_deliver_commands_to_either(common_settings: CommonSettings) -> None:
    pepper = common_settings.key_pepper.get_secret_value()
    first_key = await create_key(common_settings.database_url, pepper)
    second_key = await create_key(common_settings.database_url, pepper)
    async with (
        RunningIngest(make_settings(common_settings)) as first,
        RunningIngest(make_settings(common_settings)) as second,
        TopicReader(
            common_settings.kafka_bootstrap, topic(common_settings, topics.COMMAND_RESULTS)
        ) as reader,
    ):
        agents = {
            first_key.server_id: await authed(first, first_key),
            second_key.server_id: await authed(second, second_key),
        }
        for k, ws in ((first_key, agents[first_key.server_id]), (second_key, agents[second_key.server_id])):
            await ws.send(metrics_frame(k, seq=1))
            assert await recv(ws) == {"type": "ack", "seq": 1}
        requests = [command(sid, "shell", command=f"echo {n}") for n in range(3) for sid in agents]
        for request in requests:
            await publish(common_settings, request)
        for request in requests:
            ws = agents[request.server_id]
            frame = await recv(ws)
            assert frame["command_id"] == str(request.command_id) and frame["command"] == request.command
            await ws.send(
                orjson.dumps(
                    {
                        "type": "command_response",
                        "command_id": frame["command_id"],
                        "output": "ok",
                        "exit_code": 0,
                    }
                ).decode()
            )
        ids = {str(r.command_id) for r in requests}
        results = await reader.wait_for(lambda v: v["command_id"] in ids, count=len(ids))
        await reader.drain(quiet=1.0)
        answered = [v for _, v in reader.records if v["command_id"] in ids]
        # Each command answered exactly once, by the process holding its agent, successfully.
        assert sorted(v["command_id"] for v in answered) == sorted(ids)
        assert all(v["success"] for v in results)
        assert first.metric("fleetpulse_ingest_commands_total", outcome="delivered") == 3
        assert second.metric("fleetpulse_ingest_commands_total", outcome="delivered") == 3
        for ws in agents.values():
            await ws.close()


async def test_metrics_endpoint_counts_refusals(ingest: RunningIngest) -> None:
    import httpx

    async with connect(ingest.ws_url) as ws:
        await ws.send('{"type": "auth", "api_key": "wrong"}')
        await recv(ws)
    async with httpx.AsyncClient(base_url=ingest.http_url) as client:
        body = (await client.get("/metrics")).text
    assert 'fleetpulse_ingest_refusals_total{reason="auth_malformed"} 1.0' in body


@pytest.mark.parametrize("enabled", [False, True], ids=["default-off", "on"])
async def test_permessage_deflate_is_a_setting_off_by_default(
    common_settings: CommonSettings, key: Key, enabled: bool
) -> None:
    """Its zlib state costs ~50 KB per socket and CPU per frame: only where it is asked for."""
    overrides = {"ws_per_message_deflate": True} if enabled else {}
    settings = make_settings(common_settings, **overrides)
    assert settings.ws_per_message_deflate is enabled
    async with RunningIngest(settings) as running:
        ws = await authed(running, key)  # the client offers permessage-deflate (websockets' default)
        assert [e.name for e in ws.protocol.extensions] == (["permessage-deflate"] if enabled else [])
        await ws.send(metrics_frame(key, seq=1))
        assert await recv(ws) == {"type": "ack", "seq": 1}
        await ws.close()
