"""The database goes away under a running API (a TCP proxy between them is cut): requests get a
503 that says to retry, never a 500 or a hang; /ready says which dependency is down; when the
database is back, the same API serves again without a restart."""

from __future__ import annotations

import asyncio

from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, create_server, register, running_api
from tests.support.problems import assert_problem
from tests.support.tcp_proxy import database_proxy


async def test_database_outage_answers_503_then_recovers(common_settings: CommonSettings) -> None:
    with database_proxy(common_settings.database_url) as (proxy, through_proxy):
        common = common_settings.model_copy(update={"database_url": through_proxy})
        settings = api_settings(common, db_command_timeout_seconds=5.0)
        async with running_api(settings) as (_, client):
            owner = await register(client)
            server_id = await create_server(client, owner)

            proxy.cut()
            async with asyncio.timeout(60):
                servers = await client.get("/api/v1/servers", headers=owner.headers)
                created = await client.post("/api/v1/servers", json={"name": "x"}, headers=owner.headers)
                ready = await client.get("/ready")
            assert "retry" in assert_problem(servers, 503, "unavailable")["detail"]
            assert_problem(created, 503, "unavailable")
            # Not ready is problem details too, each dependency's check an extension member.
            not_ready = assert_problem(ready, 503, "unavailable")
            assert not_ready["kafka"] == "ok" and not_ready["database"] != "ok"
            assert not_ready["detail"].startswith("not ready: database unreachable")
            assert (await client.get("/health")).status_code == 200  # alive, only not ready

            proxy.restore()
            async with asyncio.timeout(60):
                while (await client.get("/ready")).status_code != 200:
                    await asyncio.sleep(0.2)
            again = await client.get(f"/api/v1/servers/{server_id}", headers=owner.headers)
            assert again.status_code == 200 and again.json()["id"] == str(server_id)
