"""Remote commands over HTTP, through Kafka to a test agent and back: the switch, the allowlist,
roles, an offline agent, the timeout, the rate limit, Docker actions, history and audit rows.

The test agent stands where ingest and the real agent stand: it reads the commands topic and
answers on the results topic, as ingest relays an agent's answer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import topics
from schemas.canonical import COMMAND_REQUEST, CommandRequest, CommandResult
from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, create_server, register, running_api
from tests.support.problems import assert_problem


class TestAgent:
    __test__ = False

    def __init__(self, common: CommonSettings) -> None:
        self.common = common
        self.received: list[CommandRequest] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=common.kafka_bootstrap, group_id=None, enable_auto_commit=False
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=common.kafka_bootstrap, acks="all")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TestAgent:
        topic = topics.COMMANDS.name(self.common.topic_prefix)
        await self._producer.start()
        partitions = await self._producer.partitions_for(topic)
        await self._consumer.start()
        assigned = [TopicPartition(topic, p) for p in partitions]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()
        await self._producer.stop()

    async def _run(self) -> None:
        async for record in self._consumer:
            request = COMMAND_REQUEST.validate_json(record.value)
            self.received.append(request)
            if request.command == "never-answers":
                continue
            if request.action == "shell":
                result = CommandResult(
                    command_id=request.command_id,
                    server_id=request.server_id,
                    success=True,
                    output=f"ran: {request.command}\n",
                    exit_code=0,
                    duration_ms=12,
                    finished_at=datetime.now(UTC),
                )
            elif request.action == "logs":
                result = CommandResult(
                    command_id=request.command_id,
                    server_id=request.server_id,
                    success=True,
                    logs=tuple(f"line {i}" for i in range(request.tail or 0)),
                    finished_at=datetime.now(UTC),
                )
            else:
                result = CommandResult(
                    command_id=request.command_id,
                    server_id=request.server_id,
                    success=True,
                    message=f"container {request.container_id} {request.action}ed",
                    finished_at=datetime.now(UTC),
                )
            await self._producer.send_and_wait(
                topics.COMMAND_RESULTS.name(self.common.topic_prefix),
                result.to_bytes(),
                key=topics.server_key(request.server_id),
            )


@pytest.fixture
async def agent(common_settings: CommonSettings) -> AsyncIterator[TestAgent]:
    async with TestAgent(common_settings) as test_agent:
        yield test_agent


async def _connect(db: psycopg.AsyncConnection, server_id: uuid.UUID) -> None:
    """What ingest writes while it holds the server's agent socket."""
    await db.execute(
        """INSERT INTO agent_connections (server_id, ingest_id, connection_id, key_id, since, seen_at)
           VALUES (%s, 'test-ingest', %s, %s, now(), now())
           ON CONFLICT (server_id) DO UPDATE SET seen_at = now()""",
        (server_id, uuid.uuid4(), uuid.uuid4()),
    )


async def test_command_round_trip_and_safeguards(
    common_settings: CommonSettings, db: psycopg.AsyncConnection, agent: TestAgent
) -> None:
    settings = api_settings(common_settings, command_timeout_seconds=5.0, commands_per_minute=8)
    async with running_api(settings) as (_, client):
        owner, operator, viewer = await register(client), await register(client), await register(client)
        server_id = await create_server(client, owner)
        for user, role in ((operator, "operator"), (viewer, "viewer")):
            r = await client.post(
                f"/api/v1/servers/{server_id}/shares",
                json={"email": user.email, "role": role},
                headers=owner.headers,
            )
            assert r.status_code == 201
        await _connect(db, server_id)
        url = f"/api/v1/commands/{server_id}"

        # Off by default: refused, and nothing reaches the agent.
        r = await client.post(url, json={"command": "uptime"}, headers=operator.headers)
        assert r.status_code == 403 and "disabled" in r.json()["detail"]

        # Only an owner turns commands on; an invalid pattern is refused.
        r = await client.put(
            f"/api/v1/servers/{server_id}/commands", json={"commands_enabled": True}, headers=operator.headers
        )
        assert r.status_code == 403
        r = await client.put(
            f"/api/v1/servers/{server_id}/commands",
            json={"commands_enabled": True, "command_allowlist": ["(unclosed"]},
            headers=owner.headers,
        )
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["loc"] == ["body", "command_allowlist", 0]
        assert r.json()["errors"][0]["type"] == "invalid_pattern"
        r = await client.put(
            f"/api/v1/servers/{server_id}/commands",
            json={
                "commands_enabled": True,
                "command_allowlist": ["uptime", r"echo [a-z ]+", "never-answers"],
            },
            headers=owner.headers,
        )
        assert r.status_code == 200 and r.json()["commands_enabled"] is True

        # Outside the allowlist (a full match is needed): refused.
        for command in ("rm -rf /", "echo HELLO"):
            r = await client.post(url, json={"command": command}, headers=operator.headers)
            assert r.status_code == 403 and "allowlist" in r.json()["detail"], command
        # Shell syntax is refused before any pattern is tried (api/commandline.py).
        r = await client.post(url, json={"command": "uptime; rm -rf /"}, headers=operator.headers)
        assert r.status_code == 422 and "grammar" in r.json()["detail"], r.text
        # A viewer may not run commands.
        r = await client.post(url, json={"command": "uptime"}, headers=viewer.headers)
        assert r.status_code == 403

        # The round trip through Kafka: output, exit code, duration.
        r = await client.post(url, json={"command": "echo hello world"}, headers=operator.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True and body["output"] == "ran: echo hello world\n"
        assert body["exit_code"] == 0 and body["duration_ms"] == 12 and body["error"] is None
        sent = [c for c in agent.received if str(c.command_id) == body["command_id"]]
        assert len(sent) == 1 and sent[0].requested_by == operator.id and sent[0].server_id == server_id

        # Docker actions travel the same way.
        r = await client.post(f"/api/v1/docker/{server_id}/containers/web/restart", headers=operator.headers)
        assert r.status_code == 200 and r.json()["status"] == "success"
        assert r.json()["message"] == "container web restarted"
        r = await client.get(
            f"/api/v1/docker/{server_id}/containers/web/logs?tail=3", headers=operator.headers
        )
        assert r.status_code == 200 and r.json()["logs"] == ["line 0", "line 1", "line 2"]

        # No answer within the timeout: 504, and the request still counted in history.
        r = await client.post(url, json={"command": "never-answers"}, headers=operator.headers)
        assert_problem(r, 504, "agent-timeout")

        # History: who sent what, and the result.
        r = await client.get(f"{url}/history", headers=operator.headers)
        assert r.status_code == 200
        history = {h["command_id"]: h for h in r.json()["items"]}
        done = history[body["command_id"]]
        assert done["requested_by"] == str(operator.id) and done["command"] == "echo hello world"
        assert (
            done["success"] is True and done["exit_code"] == 0 and done["output"] == "ran: echo hello world\n"
        )
        assert {h["action"] for h in r.json()["items"]} == {"shell", "restart", "logs"}
        assert any(h["command"] == "never-answers" and h["success"] is None for h in r.json()["items"])
        assert (await client.get(f"{url}/history", headers=viewer.headers)).status_code == 403

        # The agent goes away: 503 at once, nothing published.
        before = len(agent.received)
        await db.execute("DELETE FROM agent_connections WHERE server_id = %s", (server_id,))
        r = await client.post(url, json={"command": "uptime"}, headers=operator.headers)
        assert "not connected" in assert_problem(r, 503, "agent-offline")["detail"]
        assert len(agent.received) == before
        # A claim that stopped being refreshed is a dead ingest process: offline too.
        await db.execute(
            """INSERT INTO agent_connections (server_id, ingest_id, connection_id, key_id, since, seen_at)
               VALUES (%s, 'dead', %s, %s, now() - interval '1 hour', now() - interval '1 hour')""",
            (server_id, uuid.uuid4(), uuid.uuid4()),
        )
        r = await client.post(url, json={"command": "uptime"}, headers=operator.headers)
        assert r.status_code == 503

        # The rate limit (8 a minute per user and server in this test) answers 429.
        await _connect(db, server_id)
        statuses = [
            (await client.post(url, json={"command": "uptime"}, headers=owner.headers)).status_code
            for _ in range(9)
        ]
        assert statuses[:8] == [200] * 8 and statuses[8] == 429

        # Audit rows: every attempt, refused or not, with who and the result.
        rows = await (
            await db.execute(
                "SELECT user_id, status, detail->>'command' FROM audit_log "
                "WHERE server_id = %s AND action = 'run_command' ORDER BY id",
                (server_id,),
            )
        ).fetchall()
        assert (operator.id, 403, "rm -rf /") in rows
        assert (viewer.id, 403, "uptime") in rows
        assert (operator.id, 200, "echo hello world") in rows
        assert (operator.id, 504, "never-answers") in rows
        assert (owner.id, 429, "uptime") in rows
        toggles = await (
            await db.execute(
                "SELECT user_id, status FROM audit_log "
                "WHERE server_id = %s AND action = 'set_command_settings'",
                (server_id,),
            )
        ).fetchall()
        assert (owner.id, 200) in toggles and (operator.id, 403) in toggles
