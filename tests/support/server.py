"""A real FleetPulse server for end-to-end tests: `python -m ops.server` (the API and ingest in one
process, as make run starts it) on a free port, in a topic namespace of the test, with the
persistence processor for the tests that need stored rows."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.test_agent_stack import Proc, free_port, service_env
from tests.support.persist import PersistEnv, new_env, wait_until


@dataclass
class Server:
    proc: Proc
    url: str
    env: PersistEnv

    @property
    def agent_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/agents/ws"


@asynccontextmanager
async def combined_server(
    database_url: str, kafka_bootstrap: str, tmp_path: Path, **settings: str
) -> AsyncIterator[Server]:
    env = await new_env(database_url, kafka_bootstrap, tmp_path / "state")
    port = free_port()
    proc = Proc(
        [sys.executable, "-m", "ops.server"],
        service_env(env.common, FLEETPULSE_API_HOST="127.0.0.1", FLEETPULSE_API_PORT=str(port), **settings),
        tmp_path / "server.log",
    ).start()
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        assert proc.proc is not None and proc.proc.poll() is None, proc.output()[-3000:]
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{url}/ready", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_until(ready, timeout=90, what="the server to be ready")
        yield Server(proc, url, env)
    finally:
        proc.stop()
