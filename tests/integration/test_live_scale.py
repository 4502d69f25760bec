"""1,000 concurrent sockets on one API process: each receives every sample of its server, and
the hub builds each message's frame once however many sockets watch the server."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from typing import Any

import psycopg

from api.live.settings import LiveSettings
from schemas.settings import CommonSettings
from tests.support.live_harness import ApiServer, Client, Publisher, add_server, add_user, number_of, sample

SOCKETS = 1000
SERVERS = 10
SAMPLES = 20


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_one_thousand_sockets_on_one_process_each_get_every_sample(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    _raise_fd_limit(4 * SOCKETS + 256)  # both ends of every socket live in this process
    owner = await add_user(db)
    servers = [await add_server(db, owner) for _ in range(SERVERS)]
    live = LiveSettings(metrics_queue_frames=SAMPLES * 2)  # the burst below is never coalesced
    async with ApiServer(common_settings, live) as api, Publisher(kafka_bootstrap, topic_prefix) as pub:
        auth = {"type": "auth", "token": api.token(owner)}
        clients = [Client(api.url("metrics", servers[i % SERVERS]), auth) for i in range(SOCKETS)]
        async with contextlib.AsyncExitStack() as stack:
            # Connect in waves, as browsers arrive; every socket is open before publishing.
            for start in range(0, SOCKETS, 100):
                wave = clients[start : start + 100]
                await asyncio.gather(*(stack.enter_async_context(c) for c in wave))
                await asyncio.gather(
                    *(c.until(lambda f: f["type"] == "history_end", within=120) for c in wave)
                )
            assert api.live.hub.subscriber_count() == 2 * SOCKETS  # metrics and alerts each
            built = api.live.hub.frames_built
            await pub.many([sample(s, n) for n in range(SAMPLES) for s in servers])
            await asyncio.gather(
                *(
                    c.until(lambda f: f["type"] == "metrics" and number_of(f) == SAMPLES - 1, within=120)
                    for c in clients
                )
            )
            for c in clients:
                assert [number_of(f) for f in c.frames if f["type"] == "metrics"] == list(range(SAMPLES))
            # Encoded once per message, not once per socket.
            assert api.live.hub.frames_built - built == SERVERS * SAMPLES
