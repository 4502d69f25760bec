"""The attack suite's stack: the real one-process server (`python -m ops.server`, as `make run`
starts it) on a free port, over TCP, on the real Kafka and TimescaleDB, one per test module, with
the module's `STACK_SETTINGS` in its environment. Attacks come from several loopback addresses
(127.0.0.0/8 is all this machine's), so "another client" is a real other peer address.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.test_agent_stack import Proc, free_port, service_env
from tests.support.persist import PersistEnv, new_env

PASSWORD = "a sturdy passphrase 42"


@dataclass
class Stack:
    proc: Proc
    url: str
    env: PersistEnv
    scheme: str = "http"
    verify: Any = True
    log: Path = field(default_factory=Path)

    @property
    def agent_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/api/v1/agents/ws"

    def client(self, address: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client whose connections come from `address` (any of 127.0.0.0/8)."""
        transport = httpx.AsyncHTTPTransport(local_address=address, verify=self.verify)
        return httpx.AsyncClient(base_url=self.url, transport=transport, timeout=60, **kwargs)

    def server_log(self) -> str:
        return self.proc.output()


def start_stack(
    database_url: str,
    kafka_bootstrap: str,
    folder: Path,
    settings: dict[str, str],
    *,
    scheme: str = "http",
    verify: Any = True,
) -> Stack:
    env = asyncio.run(new_env(database_url, kafka_bootstrap, folder / "state"))
    port = free_port()
    log = folder / "server.log"
    proc = Proc(
        [sys.executable, "-m", "ops.server"],
        service_env(
            env.common,
            FLEETPULSE_API_HOST="127.0.0.1",
            FLEETPULSE_API_PORT=str(port),
            **settings,
        ),
        log,
    ).start()
    stack = Stack(proc, f"{scheme}://127.0.0.1:{port}", env, scheme, verify, log)
    deadline = time.monotonic() + 90
    while True:
        assert proc.proc is not None and proc.proc.poll() is None, proc.output()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{stack.url}/ready", timeout=2, verify=verify).status_code == 200:
                return stack
        if time.monotonic() > deadline:
            proc.stop()
            raise AssertionError(f"the server was not ready within 90 s:\n{proc.output()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    database_url: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    settings: dict[str, str] = getattr(request.module, "STACK_SETTINGS", {})
    running = start_stack(database_url, kafka_bootstrap, tmp_path_factory.mktemp("stack"), settings)
    try:
        yield running
    finally:
        running.proc.stop()


# --- the REST steps the attacks start from ---------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    headers: dict[str, str]
    id: str


async def register(http: httpx.AsyncClient, password: str = PASSWORD) -> Account:
    name = f"u{uuid.uuid4().hex[:12]}"
    email = f"{name}@example.com"
    answer = await http.post(
        "/api/v1/auth/register",
        json={"email": email, "username": name, "password": password, "password_confirm": password},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Account(email, password, {"Authorization": f"Bearer {body['access_token']}"}, body["user"]["id"])


async def new_server(http: httpx.AsyncClient, owner: Account) -> tuple[str, str]:
    """A server of `owner` and an API key for it: (server id, key)."""
    answer = await http.post(
        "/api/v1/servers", json={"name": f"s-{uuid.uuid4().hex[:6]}"}, headers=owner.headers
    )
    assert answer.status_code == 201, answer.text
    server_id = answer.json()["id"]
    key = await http.post(
        "/api/v1/api-keys", json={"server_id": server_id, "name": "agent"}, headers=owner.headers
    )
    assert key.status_code == 201, key.text
    return server_id, key.json()["key"]


# --- agents ---------------------------------------------------------------------------------------

LEGACY_METRICS = orjson.dumps(
    {
        "type": "metrics",
        "data": {
            "server_id": "uuid",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "cpu": {"usage_percent": 12.5, "cores": 1, "frequency_mhz": 2400},
            "memory": {"total_gb": 15.5, "used_gb": 6.2, "available_gb": 8.9, "usage_percent": 39.9},
            "disk": {"total_gb": 97.8, "used_gb": 41.3, "available_gb": 51.5, "usage_percent": 44.5},
            "network": {"bytes_sent": 1, "bytes_recv": 2, "packets_sent": 3, "packets_recv": 4},
            "containers": None,
            "processes": [],
        },
    }
).decode()


async def recv(ws: ClientConnection, within: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        value: dict[str, Any] = orjson.loads(await ws.recv())
        return value


@contextlib.asynccontextmanager
async def agent_socket(
    stack: Stack, key: str, address: str = "127.0.0.1", **kwargs: Any
) -> AsyncIterator[ClientConnection]:
    """An authenticated agent socket (the auth answer already read)."""
    async with connect(stack.agent_url, local_addr=(address, 0), open_timeout=20, **kwargs) as ws:
        await ws.send(orjson.dumps({"type": "auth", "api_key": key}).decode())
        answer = await recv(ws)
        assert answer.get("type") == "auth_success", answer
        yield ws


@contextlib.asynccontextmanager
async def chatops_agent(stack: Stack, key: str) -> AsyncIterator[list[str]]:
    """The legacy ChatOps agent as its spec describes it: it runs every `execute_command` through
    `sh -c` and answers `command_result`. Yields the list of commands it ran."""
    ran: list[str] = []
    async with agent_socket(stack, key) as ws:
        await ws.send(LEGACY_METRICS)
        assert (await recv(ws))["type"] == "metrics_received"

        async def serve() -> None:
            while True:
                frame = orjson.loads(await ws.recv())
                if frame.get("type") != "execute_command":
                    continue
                ran.append(frame["command"])
                proc = await asyncio.create_subprocess_shell(
                    frame["command"], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
                )
                output, _ = await proc.communicate()
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "command_result",
                            "data": {"output": output.decode(), "exit_code": proc.returncode},
                            "request_id": frame["request_id"],
                        }
                    ).decode()
                )

        task = asyncio.create_task(serve())
        try:
            yield ran
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
