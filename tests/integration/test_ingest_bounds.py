"""Values storage cannot hold, sent on a real agent socket: each gets the validation error frame
(its seq echoed), no ack, and is counted; the socket stays open. These used to end the socket
with 1011 (integers past 2^64, `total_gb: 1e300`, year-1 and year-9999 timestamps) or, in the
first frame, drop it with a traceback the failed-auth limiter never counted."""

from __future__ import annotations

import logging

import orjson
import pytest
from websockets.asyncio.client import connect

from schemas.settings import CommonSettings
from tests.integration.test_ingest_socket import authed, closed_with, make_settings, recv
from tests.support.ingest_harness import RunningIngest, create_key

pytestmark = pytest.mark.timeout(120)

SEED = (
    '{"type": "metrics", "seq": %d, "cpu_percent": 1, "memory_percent": 2, "timestamp": "%s",'
    ' "network": [{"interface": "eth0", "bytes_sent": %s, "bytes_recv": 1}], "cpu_cores": %s}'
)
LEGACY = (
    '{"type": "metrics", "data": {"timestamp": "%s", "cpu": {"usage_percent": 1, "cores": 1},'
    ' "memory": {"total_gb": %s, "used_gb": 1, "usage_percent": 2}}}'
)
NOW = "2026-01-01T00:00:00Z"


async def test_unstorable_values_get_a_validation_error_and_the_socket_stays_open(
    common_settings: CommonSettings, caplog: pytest.LogCaptureFixture
) -> None:
    pepper = common_settings.key_pepper.get_secret_value()
    seed_key = await create_key(common_settings.database_url, pepper)
    legacy_key = await create_key(common_settings.database_url, pepper)
    refused_seed = [
        (SEED % (1, NOW, 2**64, 1), "network.0.bytes_sent"),
        (SEED % (2, NOW, 2**64 + 1, 1), "network.0.bytes_sent"),
        (SEED % (3, NOW, 2**63, 1), "network.0.bytes_sent"),
        (SEED % (4, NOW, 1, 2**32 + 8), "cpu_cores"),
        (SEED % (5, "0001-01-01T00:00:00+01:00", 1, 1), "timestamp"),
        (SEED % (6, "9999-12-31T23:59:59-01:00", 1, 1), "timestamp"),
        (SEED % (7, "1999-12-31T23:59:59Z", 1, 1), "timestamp"),
        (SEED % (8, NOW, "NaN", 1), "network.0.bytes_sent"),
        (SEED.replace('"cpu_percent": 1', '"cpu_percent": NaN') % (9, NOW, 1, 1), "cpu_percent"),
        (SEED.replace('"cpu_percent": 1', '"cpu_percent": 1e309') % (10, NOW, 1, 1), "cpu_percent"),
        (SEED.replace('"eth0"', '"eth\\u0000"') % (11, NOW, 1, 1), "network.0.interface"),
    ]
    refused_legacy = [
        (LEGACY % (NOW, "1e300"), "data.memory.total_gb"),
        (LEGACY % (NOW, "Infinity"), "data.memory.total_gb"),
        (LEGACY % ("0001-01-01T00:00:00+02:00", 1), "data.timestamp"),
        (LEGACY % ("9999-12-31T23:59:59-02:00", 1), "data.timestamp"),
    ]
    async with RunningIngest(make_settings(common_settings)) as ingest:
        seed = await authed(ingest, seed_key)
        for raw, field in refused_seed:
            await seed.send(raw)
            reply = await recv(seed)
            assert reply["type"] == "error" and reply["code"] == "validation", (raw, reply)
            assert reply["detail"].startswith(f"{field}:"), reply
            assert reply["seq"] == orjson.loads(raw.replace("NaN", "0").replace("1e309", "0"))["seq"]
        await seed.send(SEED % (12, NOW, 2**63 - 1, 2**31 - 1))  # the largest values that fit
        assert await recv(seed) == {"type": "ack", "seq": 12}
        await seed.close()
        legacy = await authed(ingest, legacy_key)
        for raw, field in refused_legacy:
            await legacy.send(raw)
            reply = await recv(legacy)
            assert reply["type"] == "error" and reply["detail"].startswith(f"{field}:"), reply
        await legacy.send(LEGACY % ("2026-01-01T02:00:00+02:00", 8589934591.5))
        assert await recv(legacy) == {"type": "metrics_received", "status": "ok"}
        await legacy.send('{"type": "ping"}')
        assert await recv(legacy) == {"type": "pong"}
        await legacy.close()
    total = len(refused_seed) + len(refused_legacy)
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="validation") == total
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_year_one_timestamp_as_the_first_frame_is_refused_and_counted_as_a_failed_auth(
    common_settings: CommonSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(common_settings, auth_fail_limit=2, auth_fail_window=60)
    async with RunningIngest(settings) as ingest:
        for _ in range(2):
            async with connect(ingest.ws_url) as ws:
                await ws.send(SEED % (1, "0001-01-01T00:00:00+01:00", 1, 1))
                reply = await recv(ws)
                assert reply["type"] == "error" and reply["code"] == "validation", reply
                assert reply["detail"].startswith("timestamp:")
                assert await closed_with(ws) == 1008
        # Both were counted by the failed-auth limiter: the next failing attempt is rate limited.
        async with connect(ingest.ws_url) as ws:
            await ws.send('{"type": "auth", "api_key": "nope"}')
            assert (await recv(ws))["code"] == "rate_limited"
            assert await closed_with(ws) == 1008
    assert ingest.metric("fleetpulse_ingest_refusals_total", reason="auth_required") == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
