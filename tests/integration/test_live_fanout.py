"""Fanout: resume after a reconnect, slow clients (coalesced or closed) that never delay the
others, and two API processes side by side, each seeing every message its clients watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import psycopg
import pytest

from api.live.settings import LiveSettings
from schemas.frontend_wire import CloseCode
from schemas.settings import CommonSettings
from tests.support.live_harness import (
    ApiServer,
    Publisher,
    StalledClient,
    add_server,
    add_user,
    client,
    log_record,
    number_of,
    sample,
)

STEP = 5  # samples published at a time, below the reading client's queue


def _numbers(frames: list[dict[str, Any]]) -> list[int]:
    return [number_of(f) for f in frames if f["type"] in ("metrics", "log")]


def _number_is(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] in ("metrics", "log") and number_of(f) == n


async def _wait_for(predicate: Any, within: float = 60) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.fixture
async def api(common_settings: CommonSettings) -> AsyncIterator[ApiServer]:
    live = LiveSettings(max_catchup_messages=500, metrics_queue_frames=8, logs_queue_frames=20)
    async with ApiServer(common_settings, live) as server:
        yield server


async def test_resume_after_a_reconnect_gets_exactly_what_was_missed(
    api: ApiServer, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    token = api.token(owner)
    async with Publisher(kafka_bootstrap, topic_prefix) as pub:
        async with client(api.url("metrics", server), {"type": "auth", "token": token}) as c:
            await c.until(lambda f: f["type"] == "history_end")
            await pub.many([sample(server, n) for n in range(10)])
            await c.until(lambda f: f["type"] == "metrics" and number_of(f) == 9)
            last = [f for f in c.frames if f["type"] == "metrics"][-1]["position"]
        # Away: 10..29 are published while the client is disconnected.
        await pub.many([sample(server, n) for n in range(10, 30)])
        resume = {"type": "auth", "token": token, "resume": last}
        async with client(api.url("metrics", server), resume) as c:
            end = await c.until(lambda f: f["type"] == "history_end")
            assert end["position"] == last  # no history: the stream continues after `last`
            await c.until(lambda f: f["type"] == "metrics" and number_of(f) == 29)
            await pub.many([sample(server, n) for n in range(30, 35)])
            await c.until(lambda f: f["type"] == "metrics" and number_of(f) == 34)
        assert _numbers(c.frames) == list(range(10, 35))
        assert not any(f.get("history") for f in c.frames if f["type"] == "metrics")

        # A position further back than max_catchup_messages: "history lost, refetch".
        await pub.many([sample(server, n) for n in range(35, 600)])
        async with client(api.url("metrics", server), resume) as c:
            lost = await c.until(lambda f: f["type"] == "history_lost")
            assert lost["requested"] == last and "too far behind" in lost["reason"]
            await c.until(lambda f: f["type"] == "history_end")
        # A position of another partition cannot be resumed either.
        other = {"partition": (last["partition"] + 1) % 4, "offset": 0}
        async with client(api.url("metrics", server), {**resume, "resume": other}) as c:
            lost = await c.until(lambda f: f["type"] == "history_lost")
            assert "another partition" in lost["reason"]


async def test_a_logs_client_that_never_reads_is_closed_and_delays_nobody(
    api: ApiServer, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    token = api.token(owner)
    hub = api.live.hub
    lines = 1500
    async with (
        Publisher(kafka_bootstrap, topic_prefix) as pub,
        client(api.url("logs", server), {"type": "auth", "token": token}) as reader,
        StalledClient(api.port, f"/api/v1/ws/logs/{server}", {"type": "auth", "token": token}) as stalled,
    ):
        await reader.until(lambda f: f["type"] == "history_end")
        # Both sockets subscribed (each: its logs and its alerts).
        await _wait_for(lambda: hub.subscriber_count() >= 4)
        # 1500 lines of 6 KB: far more than the stalled socket's buffers and its 20-frame queue.
        # Published in steps the reading client keeps up with (its own queue is 20 frames too).
        for n in range(0, lines, 2 * STEP):
            await pub.many([log_record(server, k, pad=6000) for k in range(n, n + 2 * STEP)])
            await reader.until(_number_is(n + 2 * STEP - 1))
        assert _numbers(reader.frames) == list(range(lines))
        # The stalled socket was closed as a slow consumer and unsubscribed.
        await _wait_for(lambda: api.live.closes[CloseCode.SLOW_CONSUMER] >= 1)
        await _wait_for(lambda: hub.subscriber_count() == 2)
        got = [payload async for _, payload in stalled.frames()]  # drains to the end of the socket
        assert len(got) < lines


async def test_a_metrics_client_that_never_reads_is_coalesced_to_the_latest(
    api: ApiServer, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    token = api.token(owner)
    count = 1000
    async with (
        Publisher(kafka_bootstrap, topic_prefix) as pub,
        client(api.url("metrics", server), {"type": "auth", "token": token}) as reader,
        StalledClient(api.port, f"/api/v1/ws/metrics/{server}", {"type": "auth", "token": token}) as stalled,
    ):
        await reader.until(lambda f: f["type"] == "history_end")
        await _wait_for(lambda: api.live.hub.subscriber_count() >= 4)
        for n in range(0, count, STEP):
            await pub.many([sample(server, k, disks=80) for k in range(n, n + STEP)])
            await reader.until(_number_is(n + STEP - 1))
        assert _numbers(reader.frames) == list(range(count))
        # Now the stalled client reads: it is still open, told how much was coalesced, and its
        # last frame is the newest sample.
        frames: list[dict[str, Any]] = []
        async for opcode, payload in stalled.frames(within=60):
            assert opcode == 0x1, "the metrics socket must not be closed"
            frames.append(orjson.loads(payload))
            if frames[-1]["type"] == "metrics" and number_of(frames[-1]) == count - 1:
                break
        skipped = sum(f["skipped"] for f in frames if f["type"] == "coalesced")
        numbers = _numbers(frames)
        assert skipped > 0 and numbers == sorted(numbers) and numbers[-1] == count - 1
        assert len(numbers) + skipped == count  # every sample either delivered or counted
    assert api.live.closes[CloseCode.SLOW_CONSUMER] == 0


async def test_two_api_processes_each_see_every_message_of_their_clients(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    live = LiveSettings(metrics_queue_frames=1000)  # a burst of 200 at once, none coalesced
    async with (
        ApiServer(common_settings, live) as one,
        ApiServer(common_settings, live) as two,
        Publisher(kafka_bootstrap, topic_prefix) as pub,
    ):
        auth = {"type": "auth", "token": one.token(owner)}
        async with (
            client(one.url("metrics", server), auth) as a,
            client(two.url("metrics", server), auth) as b,
            client(two.url("metrics", server), auth) as c,
        ):
            for x in (a, b, c):
                await x.until(lambda f: f["type"] == "history_end")
            await pub.many([sample(server, n) for n in range(200)])
            for x in (a, b, c):
                await x.until(lambda f: f["type"] == "metrics" and number_of(f) == 199)
                assert _numbers(x.frames) == list(range(200))
        # One reader per process, no consumer group: each process read the partition itself.
        assert one.live.reader.records >= 200 and two.live.reader.records >= 200
