"""The database cut through a TCP proxy: agents are refused with "retry" and 1013 (never let in
unverified), and ingest recovers by itself when the database is back."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import connect

from schemas.settings import CommonSettings
from tests.integration.test_ingest_socket import authed, closed_with, make_settings, recv
from tests.support.ingest_harness import RunningIngest, create_key
from tests.support.tcp_proxy import database_proxy

pytestmark = pytest.mark.timeout(120)


async def test_database_outage_refuses_with_retry_then_recovers(common_settings: CommonSettings) -> None:
    key = await create_key(common_settings.database_url, common_settings.key_pepper.get_secret_value())
    with database_proxy(common_settings.database_url) as (proxy, proxied):
        common = common_settings.model_copy(update={"database_url": proxied})
        settings = make_settings(common, db_timeout=2.0)
        async with RunningIngest(settings) as running:
            ws = await authed(running, key)  # works through the proxy
            await ws.close()
            proxy.cut()
            async with connect(running.ws_url) as refused:
                await refused.send(orjson.dumps({"type": "auth", "api_key": key.plaintext}).decode())
                reply = await recv(refused)
                assert reply["code"] == "retry" and reply["retry"] is True
                assert await closed_with(refused) == 1013
            proxy.restore()
            # The pool reconnects on its own: within a generous deadline the same key gets in.
            async with asyncio.timeout(60):
                while True:
                    async with connect(running.ws_url) as again:
                        await again.send(orjson.dumps({"type": "auth", "api_key": key.plaintext}).decode())
                        reply = await recv(again)
                        if reply["type"] == "auth_success":
                            break
                        assert reply["code"] == "retry"
                    await asyncio.sleep(0.2)
            assert running.metric("fleetpulse_ingest_refusals_total", reason="database_unavailable") >= 1
