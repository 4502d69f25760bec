"""One process, one port: ingest and the API served together (`python -m ops.server`).

End to end through the real pieces: a user sets up a server and a key over REST, an agent
connects to the agent socket on the same port, a command goes API -> Kafka -> ingest -> agent
socket and its answer back; deactivating the key closes the agent's socket within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ingest.settings import IngestSettings
from ops.server import create_combined_app
from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, create_server, register


@contextlib.asynccontextmanager
async def serving(common: CommonSettings) -> AsyncIterator[int]:
    app = create_combined_app(
        api_settings(common, command_timeout_seconds=20.0),
        IngestSettings(common=common, presence_interval=0.5, key_recheck_interval=1.0),
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server._serve())  # the test's loop keeps its own signal handling
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        async with asyncio.timeout(60):
            await task


async def recv(ws: ClientConnection, within: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        value: dict[str, Any] = orjson.loads(await ws.recv())
        return value


async def test_one_process_serves_rest_and_agents_end_to_end(
    common_settings: CommonSettings, db: psycopg.AsyncConnection
) -> None:
    async with (
        serving(common_settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
    ):
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/ready")).json()["status"] == "ready"
        assert (await http.get("/ingest/metrics")).status_code == 200

        name = f"u{uuid.uuid4().hex[:10]}"
        token = (
            await http.post(
                "/api/v1/auth/register",
                json={
                    "email": f"{name}@example.com",
                    "username": name,
                    "password": "x" * 12,
                    "password_confirm": "x" * 12,
                },
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        server_id = (await http.post("/api/v1/servers", json={"name": "edge"}, headers=auth)).json()["id"]
        key = (await http.post("/api/v1/api-keys", json={"server_id": server_id}, headers=auth)).json()
        r = await http.put(
            f"/api/v1/servers/{server_id}/commands", json={"commands_enabled": True}, headers=auth
        )
        assert r.status_code == 200

        ws = await connect(f"ws://127.0.0.1:{port}/api/v1/agents/ws", max_size=None)
        await ws.send(orjson.dumps({"type": "auth", "api_key": key["key"]}).decode())
        assert (await recv(ws))["type"] == "auth_success"
        # The first metrics frame tells ingest the agent's dialect (commands wait for it).
        sample = {
            "type": "metrics",
            "seq": 1,
            "server_id": server_id,
            "cpu_percent": 12.5,
            "memory_percent": 40.0,
            "timestamp": "2024-01-01T00:00:00Z",
        }
        await ws.send(orjson.dumps(sample).decode())
        assert (await recv(ws)) == {"type": "ack", "seq": 1}
        # Ingest records that it holds the socket; the API reads that before sending commands.
        async with asyncio.timeout(30):
            while not await (
                await db.execute("SELECT 1 FROM agent_connections WHERE server_id = %s", (server_id,))
            ).fetchone():
                await asyncio.sleep(0.1)

        async def agent() -> None:
            frame = await recv(ws)
            assert frame["type"] == "command" and frame["command"] == "uptime"
            await ws.send(
                orjson.dumps(
                    {
                        "type": "command_response",
                        "seq": 2,
                        "command_id": frame["command_id"],
                        "output": " 10:00 up 3 days\n",
                        "exit_code": 0,
                        "duration_ms": 7,
                    }
                ).decode()
            )
            assert (await recv(ws)) == {"type": "ack", "seq": 2}

        answering = asyncio.create_task(agent())
        r = await http.post(f"/api/v1/commands/{server_id}", json={"command": "uptime"}, headers=auth)
        await answering
        assert r.status_code == 200, r.text
        assert r.json()["output"] == " 10:00 up 3 days\n" and r.json()["exit_code"] == 0
        assert r.json()["duration_ms"] == 7

        # Deactivating the key closes the agent's socket (revocation -> ingest) within seconds.
        r = await http.post(f"/api/v1/api-keys/{key['id']}/deactivate", headers=auth)
        assert r.status_code == 200
        try:
            async with asyncio.timeout(15):
                while True:
                    await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code >= 1000


def _socket_paths(routes: list[Any], prefix: str = "") -> set[str]:
    """Every WebSocket route of an app, through included routers (found, not listed by hand)."""
    found: set[str] = set()
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            found |= _socket_paths(router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            found.add(prefix + route.path)
    return found


async def test_every_socket_refuses_strangers(common_settings: CommonSettings) -> None:
    """Each socket of the one-process app, walked from its routes: a user who may not see the
    server is closed with "not found" (browser sockets) or refused (the agent socket needs a key)."""
    async with (
        serving(common_settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
    ):
        app_paths = _socket_paths(
            create_combined_app(
                api_settings(common_settings), IngestSettings(common=common_settings)
            ).router.routes
        )
        assert app_paths == {
            "/api/v1/ws/metrics/{server_id}",
            "/api/v1/ws/logs/{server_id}",
            "/api/v1/ws/fleet",
            "/api/v1/agents/ws",
        }, "a new socket route: add its access check here"

        owner, stranger = await register(http), await register(http)
        server_id = await create_server(http, owner, "private")
        stranger_token = stranger.access
        # The fleet socket follows the user's own servers: a stranger's shows none of the owner's.
        fleet = await connect(f"ws://127.0.0.1:{port}/api/v1/ws/fleet")
        await fleet.send(orjson.dumps({"type": "auth", "token": stranger_token}).decode())
        async with asyncio.timeout(20):
            ok = orjson.loads(await fleet.recv())
            start = orjson.loads(await fleet.recv())
        assert ok["type"] == "auth_success" and ok["servers"] == 0, ok
        assert start == {"type": "fleet_update", "data": []} and str(server_id) not in str(start)
        await fleet.close()
        for path in sorted(app_paths - {"/api/v1/agents/ws", "/api/v1/ws/fleet"}):
            ws = await connect(f"ws://127.0.0.1:{port}{path.format(server_id=server_id)}")
            await ws.send(orjson.dumps({"type": "auth", "token": stranger_token}).decode())
            try:
                async with asyncio.timeout(20):
                    while True:
                        frame = orjson.loads(await ws.recv())
                        assert frame["type"] == "error", frame  # never any data of the server
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4404, (path, closed.rcvd)
        # The agent socket takes API keys only: a user's token is refused.
        agent = await connect(f"ws://127.0.0.1:{port}/api/v1/agents/ws")
        await agent.send(orjson.dumps({"type": "auth", "api_key": stranger_token}).decode())
        try:
            async with asyncio.timeout(20):
                while True:
                    frame = orjson.loads(await agent.recv())
                    assert frame["type"] in ("error", "auth_error", "auth_failed"), frame
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008
