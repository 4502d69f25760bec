"""Frontend sockets: the seed's auth and message shapes, refusals and their close codes, a token
that expires on an open socket, ping/pong and client mistakes, on the real Kafka and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.live.settings import LiveSettings
from schemas import tokens
from schemas.frontend_wire import SERVER_FRAME, CloseCode
from schemas.settings import CommonSettings
from tests.support.live_harness import ApiServer, Publisher, add_server, add_user, client, log_record, sample
from tests.support.tcp_proxy import database_proxy

LIVE = LiveSettings(
    auth_timeout_seconds=1.0, reauth_ahead_seconds=1.0, max_frame_bytes=4096, max_log_lines=1000
)


@pytest.fixture
async def api(common_settings: CommonSettings) -> AsyncIterator[ApiServer]:
    async with ApiServer(common_settings, LIVE, token_leeway_seconds=0) as server:
        yield server


def _valid(frame: dict[str, Any]) -> dict[str, Any]:
    """Every frame the server sends parses as one of the protocol's frames."""
    SERVER_FRAME.validate_python(frame)
    return frame


async def test_auth_then_history_then_live_in_the_seed_shapes(
    api: ApiServer, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    user = await add_user(db)
    server = await add_server(db, user)
    token = api.token(user)
    async with client(api.url("metrics", server), {"type": "auth", "token": token}) as c:
        ok = _valid(await c.next())
        assert ok["type"] == "auth_success", ok
        assert ok["type"] == "auth_success" and ok["server_id"] == str(server) and ok["channel"] == "metrics"
        end = _valid(await c.next())
        assert end["type"] == "history_end"
        async with Publisher(kafka_bootstrap, topic_prefix) as pub:
            await pub.metric(sample(server, 1))
            partition, offset = await pub.metric(sample(server, 2))
        first = _valid(await c.until(lambda f: f["type"] == "metrics"))
        second = _valid(await c.until(lambda f: f["type"] == "metrics"))
        # The seed's fields, plus the position and the derived network rate.
        assert first["data"]["cpu_percent"] == 1.0 and first["data"]["memory_percent"] == 50.0
        assert first["data"]["disks"][0]["mount"] == "/"
        assert second["position"] == {"partition": partition, "offset": offset}
        # 1000 bytes more in 1 ms: 1,000,000 bytes/s sent, 2,000,000 received.
        assert second["data"]["network"]["bytes_sent_per_second"] == pytest.approx(1_000_000)
        assert second["data"]["interfaces"][0]["bytes_recv_per_second"] == pytest.approx(2_000_000)
        assert first["data"]["network"]["bytes_sent_per_second"] is None  # no previous sample

    async with client(api.url("logs", server), {"type": "auth", "token": token}) as c:
        assert _valid(await c.next())["channel"] == "logs"
        await c.until(lambda f: f["type"] == "history_end")
        async with Publisher(kafka_bootstrap, topic_prefix) as pub:
            await pub.log(log_record(server, 7))
        line = _valid(await c.until(lambda f: f["type"] == "log"))
        assert line["data"]["level"] == "INFO" and line["data"]["message"] == "line 7"
        assert datetime.fromisoformat(line["data"]["timestamp"]).tzinfo is not None


REFUSALS: dict[str, CloseCode] = {
    "garbage token": CloseCode.INVALID_TOKEN,
    "foreign token": CloseCode.INVALID_TOKEN,
    "refresh token": CloseCode.INVALID_TOKEN,
    "expired token": CloseCode.TOKEN_EXPIRED,
    "foreign server": CloseCode.NOT_FOUND,
    "unknown server": CloseCode.NOT_FOUND,
    "malformed server id": CloseCode.NOT_FOUND,
    "first frame not auth": CloseCode.BAD_REQUEST,
    "not json": CloseCode.BAD_REQUEST,
    "no auth frame": CloseCode.AUTH_TIMEOUT,
    "frame too large": CloseCode.TOO_LARGE,
    "raw window too long": CloseCode.BAD_REQUEST,
    "too many log lines": CloseCode.BAD_REQUEST,
}


async def _refusal(
    api: ApiServer, owner: uuid.UUID, stranger: uuid.UUID, server: uuid.UUID, case: str
) -> None:
    code = REFUSALS[case]
    kind = "logs" if case == "too many log lines" else "metrics"
    target: uuid.UUID | str = server
    auth: dict[str, Any] | None = {"type": "auth", "token": api.token(owner)}
    raw: str | None = None
    secret = api.settings.common.jwt_secret.get_secret_value()
    if case == "garbage token":
        auth = {"type": "auth", "token": "not.a.jwt"}
    elif case == "foreign token":
        forged, _ = tokens.encode(
            "another-secret-of-sufficient-length-0000", owner, "access", timedelta(minutes=5)
        )
        auth = {"type": "auth", "token": forged}
    elif case == "refresh token":
        auth = {"type": "auth", "token": tokens.encode(secret, owner, "refresh", timedelta(minutes=5))[0]}
    elif case == "expired token":
        auth = {"type": "auth", "token": api.token(owner, now=datetime.now(UTC) - timedelta(hours=1))}
    elif case == "foreign server":
        auth = {"type": "auth", "token": api.token(stranger)}
    elif case == "unknown server":
        target = uuid.uuid4()
    elif case == "malformed server id":
        target = "not-a-uuid"
    elif case == "first frame not auth":
        auth = {"type": "ping"}
    elif case == "not json":
        raw = "{nope"
    elif case == "no auth frame":
        auth = None
    elif case == "frame too large":
        raw = "x" * 5000
    elif case == "raw window too long":
        auth = {"type": "auth", "token": api.token(owner), "window_seconds": 7 * 3600, "resolution": "raw"}
    elif case == "too many log lines":
        auth = {"type": "auth", "token": api.token(owner), "lines": LIVE.max_log_lines + 1}
    frames: list[dict[str, Any]] = []
    async with connect(api.url(kind, target), open_timeout=30, ping_interval=None) as ws:
        if raw is not None:
            await ws.send(raw)
        elif auth is not None:
            await ws.send(orjson.dumps(auth).decode())
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(30):
                while True:
                    frames.append(orjson.loads(await ws.recv()))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code, case
    errors = [f for f in frames if f["type"] == "error"]
    assert errors and errors[-1]["code"] == code and errors[-1]["message"], case
    assert not any(f["type"] in ("metrics", "log", "auth_success") for f in frames), case


async def test_refusals_get_an_error_frame_and_a_documented_close_code(
    api: ApiServer, db: psycopg.AsyncConnection[Any]
) -> None:
    owner, stranger = await add_user(db), await add_user(db)
    server = await add_server(db, owner)
    # Concurrently, on one API process: a refusal never disturbs another socket.
    await asyncio.gather(*(_refusal(api, owner, stranger, server, case) for case in REFUSALS))
    assert sum(api.live.closes.values()) == len(REFUSALS)
    assert {c for c in REFUSALS.values() if c.may_reconnect} == {
        CloseCode.TOKEN_EXPIRED,
        CloseCode.AUTH_TIMEOUT,
    }


async def test_an_expiring_token_is_asked_for_again_and_the_socket_closes_without_one(
    api: ApiServer, db: psycopg.AsyncConnection[Any]
) -> None:
    user = await add_user(db)
    server = await add_server(db, user)
    # A token with 3 s left: the server asks 1 s before expiry (reauth_ahead_seconds).
    short = api.token(user, lifetime=timedelta(seconds=3))
    async with client(api.url("metrics", server), {"type": "auth", "token": short}) as c:
        asked = await c.until(lambda f: f["type"] == "auth_required", within=30)
        assert _valid(asked)["expires_at"]
        # A fresh token on the open socket keeps it open past the first expiry.
        await c.send({"type": "auth", "token": api.token(user, lifetime=timedelta(seconds=4))})
        await c.send({"type": "ping", "id": 1})
        await c.until(lambda f: f["type"] == "pong")
        # Then no answer to the next request: closed as expired (may reconnect with a fresh token).
        await c.until(lambda f: f["type"] == "auth_required", within=30)
        assert await c.closed(within=30) == CloseCode.TOKEN_EXPIRED
    # The second token lived past the first one's expiry before the close came.
    assert [f["type"] for f in c.frames].count("auth_required") == 2


async def test_a_renewal_with_another_users_token_is_refused(
    api: ApiServer, db: psycopg.AsyncConnection[Any]
) -> None:
    user, other = await add_user(db), await add_user(db)
    server = await add_server(db, user)
    async with client(api.url("logs", server), {"type": "auth", "token": api.token(user)}) as c:
        await c.until(lambda f: f["type"] == "history_end")
        await c.send({"type": "auth", "token": api.token(other)})
        assert await c.closed() == CloseCode.INVALID_TOKEN


async def test_ping_pong_and_client_mistakes_keep_the_socket_open(
    api: ApiServer, db: psycopg.AsyncConnection[Any]
) -> None:
    user = await add_user(db)
    viewer = await add_user(db)
    server = await add_server(db, user)
    await db.execute(
        "INSERT INTO server_shares (server_id, user_id, role) VALUES (%s, %s, 'viewer')", (server, viewer)
    )
    # A viewer (a share) may watch; an unknown frame gets an error frame, not a close.
    async with client(api.url("metrics", server), {"type": "auth", "token": api.token(viewer)}) as c:
        await c.until(lambda f: f["type"] == "history_end")
        await c.send({"type": "subscribe"})
        err = _valid(await c.until(lambda f: f["type"] == "error"))
        assert err["message"].startswith("Invalid message format") and err["code"] is None
        await c.send({"type": "ping", "id": "abc"})
        pong = _valid(await c.until(lambda f: f["type"] == "pong"))
        assert pong["id"] == "abc"


async def test_without_kafka_the_api_starts_and_sockets_are_told_to_reconnect_later(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any]
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on: Kafka "down"
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    no_kafka = common_settings.model_copy(update={"kafka_bootstrap": dead})
    live = LiveSettings(kafka_timeout_seconds=1.0)
    user = await add_user(db)
    server = await add_server(db, user)
    # Only the live part: the REST side's own producer needs Kafka to start.
    async with ApiServer(no_kafka, live, full_app=False) as api:
        assert not api.live.reader.running
        async with client(api.url("metrics", server), {"type": "auth", "token": api.token(user)}) as c:
            assert await c.closed() == CloseCode.UNAVAILABLE
        assert CloseCode(CloseCode.UNAVAILABLE).may_reconnect


async def test_an_open_socket_closes_once_its_access_is_gone(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any]
) -> None:
    live = LIVE.model_copy(update={"access_recheck_seconds": 0.5})
    owner, viewer, other = await add_user(db), await add_user(db), await add_user(db)
    server = await add_server(db, owner)
    for user in (viewer, other):
        await db.execute(
            "INSERT INTO server_shares (server_id, user_id, role) VALUES (%s, %s, 'viewer')", (server, user)
        )
    async with (
        ApiServer(common_settings, live, token_leeway_seconds=0) as api,
        client(api.url("metrics", server), {"type": "auth", "token": api.token(viewer)}) as removed,
        client(api.url("logs", server), {"type": "auth", "token": api.token(other)}) as kept,
        client(api.url("metrics", server), {"type": "auth", "token": api.token(owner)}) as deactivated,
    ):
        for c in (removed, kept, deactivated):
            await c.until(lambda f: f["type"] == "history_end")
        # The share goes, and the owner is deactivated: both tokens are still valid.
        await db.execute("DELETE FROM server_shares WHERE server_id = %s AND user_id = %s", (server, viewer))
        await db.execute("UPDATE users SET is_active = false WHERE id = %s", (owner,))
        assert await removed.closed(within=10) == CloseCode.NOT_FOUND
        assert await deactivated.closed(within=10) == CloseCode.INVALID_TOKEN
        # A user whose access did not change stays connected through several rechecks.
        await asyncio.sleep(1.5)
        await kept.send({"type": "ping", "id": 7})
        assert _valid(await kept.until(lambda f: f["type"] == "pong"))["id"] == 7


async def test_a_database_outage_skips_access_checks_without_closing_sockets(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any]
) -> None:
    owner, viewer = await add_user(db), await add_user(db)
    server = await add_server(db, owner)
    await db.execute(
        "INSERT INTO server_shares (server_id, user_id, role) VALUES (%s, %s, 'viewer')", (server, viewer)
    )
    live = LIVE.model_copy(update={"access_recheck_seconds": 0.5})
    with database_proxy(common_settings.database_url) as (proxy, through_proxy):
        common = common_settings.model_copy(update={"database_url": through_proxy})
        async with (
            ApiServer(common, live, token_leeway_seconds=0, db_command_timeout_seconds=1.0) as api,
            client(api.url("metrics", server), {"type": "auth", "token": api.token(viewer)}) as c,
        ):
            await c.until(lambda f: f["type"] == "history_end")
            proxy.cut()
            await asyncio.sleep(3)  # several rechecks fail to reach the database
            await c.send({"type": "ping", "id": 1})
            assert _valid(await c.until(lambda f: f["type"] == "pong"))["id"] == 1
            proxy.restore()
            # The checks resume with the database: the share's removal still closes the socket.
            await db.execute(
                "DELETE FROM server_shares WHERE server_id = %s AND user_id = %s", (server, viewer)
            )
            assert await c.closed(within=30) == CloseCode.NOT_FOUND
