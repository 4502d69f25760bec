"""No volume limits (issue 14), agent part: 1,500 valid metrics frames from one agent were acked
in 0.4 s. Each socket now reads at most FLEETPULSE_INGEST_FRAME_BURST frames at once and
FLEETPULSE_INGEST_FRAME_RATE per second on average; past it the receiver waits, so a flooding
agent is slowed by TCP backpressure, and nothing it sent is refused or lost."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from tests.security.conftest import Stack, agent_socket, new_server, register

pytestmark = pytest.mark.timeout(180)

RATE, BURST, FRAMES = 5, 10, 50
STACK_SETTINGS = {"FLEETPULSE_INGEST_FRAME_RATE": str(RATE), "FLEETPULSE_INGEST_FRAME_BURST": str(BURST)}


def _frame(server_id: str, seq: int) -> str:
    return orjson.dumps(
        {
            "type": "metrics",
            "server_id": server_id,
            "seq": seq,
            "cpu_percent": 12.5,
            "memory_percent": 40.0,
            "disk_usage": [{"path": "/", "total": 1000, "used": 400, "free": 600, "percent": 40.0}],
            "network": [{"interface": "eth0", "bytes_sent": seq, "bytes_recv": seq}],
            "timestamp": "2026-01-01T00:00:00Z",
            "load_average": [1.0, 0.5, 0.25],
            "uptime_seconds": 100 + seq,
        }
    ).decode()


async def _paced(stack: Stack) -> float:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        text = (await http.get("/ingest/metrics")).text
    for line in text.splitlines():
        if line.startswith("fleetpulse_ingest_paced_frames_total"):
            return float(line.split()[-1])
    return 0.0


async def test_a_flooding_agent_is_paced_and_loses_nothing(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        server_id, key = await new_server(http, owner)
    acked: list[tuple[float, int]] = []
    async with agent_socket(stack, key) as ws:
        start = time.monotonic()
        for seq in range(1, FRAMES + 1):
            await ws.send(_frame(server_id, seq))  # as fast as the socket takes them
        async with asyncio.timeout(120):
            while len(acked) < FRAMES:
                reply = orjson.loads(await ws.recv())
                assert reply["type"] == "ack", reply  # never refused
                acked.append((time.monotonic() - start, reply["seq"]))
    assert sorted(seq for _, seq in acked) == list(range(1, FRAMES + 1))  # each once, none lost
    # The bucket's guarantee: by time t at most BURST + RATE * t frames were read, so at most that
    # many acked (a slower machine only acks later: this bound cannot fail for being slow).
    for count, (at, _) in enumerate(acked, start=1):
        assert count <= BURST + RATE * at + 1, (count, at)
    # The receiver waited (a frame's read takes far less than the 1/RATE s a token takes).
    assert await _paced(stack) > 0
