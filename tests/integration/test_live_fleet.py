"""The fleet socket `/api/v1/ws/fleet` on the real Kafka and database: the starting state, then
coalesced updates of the user's servers only, status changes from agent events and the stale
timer, every alert of the user's servers, ping/pong, a changed set of servers, and several sockets
served by the process's one reader with one update per message."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from api.live.hub import TP
from api.live.settings import LiveSettings
from schemas import topics
from schemas.alerts import AlertEvent
from schemas.canonical import AgentEvent, DiskSample, MetricSample
from schemas.frontend_wire import SERVER_FRAME, CloseCode
from schemas.settings import CommonSettings
from stream_processors import db as persist_db
from tests.support.live_harness import ApiServer, Client, Publisher, add_server, add_user, client

pytestmark = pytest.mark.timeout(180)

LIVE = LiveSettings(
    fleet_flush_seconds=0.3,
    access_recheck_seconds=0.5,
    fleet_stale_after_seconds=3.0,
    fleet_stale_check_seconds=0.2,
    reauth_ahead_seconds=1.0,
)


def _valid(frame: dict[str, Any]) -> dict[str, Any]:
    SERVER_FRAME.validate_python(frame)
    return frame


def _sample(server: uuid.UUID, cpu: float, at: datetime | None = None) -> MetricSample:
    t = at or datetime.now(UTC)
    disks = (DiskSample(mount="/", total_bytes=100, used_bytes=30, free_bytes=70, percent=30.0),)
    return MetricSample(
        server_id=server, time=t, received_at=t, cpu_percent=cpu, memory_percent=40.0, disks=disks
    )


def _alert(server: uuid.UUID, owner: uuid.UUID) -> AlertEvent:
    now = datetime.now(UTC)
    return AlertEvent(
        event_id=uuid.uuid4(),
        episode_id=uuid.uuid4(),
        state="firing",
        rule_id=uuid.uuid4(),
        rule_name="cpu high",
        owner_id=owner,
        server_id=server,
        metric="cpu",
        severity="critical",
        comparison="gt",
        threshold=90,
        value=97,
        started_at=now,
        time=now,
        message="cpu high",
    )


async def _event(pub: Publisher, prefix: str, server: uuid.UUID, kind: str, conn: uuid.UUID) -> None:
    event = AgentEvent(server_id=server, event=kind, time=datetime.now(UTC), connection_id=conn)
    await pub.raw(topics.AGENT_EVENTS.name(prefix), event.to_bytes(), topics.server_key(server))


def _items(frame: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["server_id"]: item for item in frame["data"]}


async def _until_item(c: Client, server: uuid.UUID, done: Any, within: float = 60) -> dict[str, Any]:
    """Read fleet_update frames until `server`'s item satisfies `done`; return it."""
    found: dict[str, Any] = {}

    def check(frame: dict[str, Any]) -> bool:
        if frame["type"] != "fleet_update":
            return False
        item = _items(_valid(frame)).get(str(server))
        if item is not None and done(item):
            found.update(item)
            return True
        return False

    await c.until(check, within=within)
    return found


async def test_fleet_socket_state_updates_status_and_alerts(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    owner, friend, stranger = await add_user(db), await add_user(db), await add_user(db)
    web, spare = await add_server(db, owner), await add_server(db, owner)
    shared = await add_server(db, friend)
    foreign = await add_server(db, stranger)
    await db.execute(
        "INSERT INTO server_shares (server_id, user_id, role) VALUES (%s, %s, 'viewer')", (shared, owner)
    )
    # A stored sample of `spare`: the starting state comes from the database.
    stored_at = datetime.now(UTC) - timedelta(minutes=2)
    await persist_db.prepare_connection(db)
    async with db.transaction():
        await persist_db.write_batch(
            db,
            [_sample(spare, 33.0, stored_at)],
            {},
            rollup_horizon=stored_at - timedelta(days=1),
            stale_after=timedelta(minutes=5),
        )

    async with (
        ApiServer(common_settings, LIVE) as api,
        client(fleet_url(api), {"type": "auth", "token": api.token(owner)}) as c,
        Publisher(kafka_bootstrap, topic_prefix) as pub,
    ):
        ok = _valid(await c.next())
        assert ok["type"] == "auth_success" and ok["channel"] == "fleet" and ok["servers"] == 3
        assert ok["server_id"] is None
        first = _valid(await c.next())
        assert first["type"] == "fleet_update"
        start = _items(first)
        assert set(start) == {str(web), str(spare), str(shared)}
        assert start[str(spare)]["cpu_percent"] == 33.0 and start[str(spare)]["disk_mount"] == "/"
        assert start[str(web)]["status"] == "unknown" and start[str(web)]["sample_time"] is None

        # Many samples of one server, back to back: few frames, each server once per frame, the
        # newest values last; the stranger's server never appears.
        await pub.many([_sample(web, float(i)) for i in range(1, 31)])
        await pub.metric(_sample(foreign, 50.0))
        item = await _until_item(c, web, lambda i: i["cpu_percent"] == 30.0)
        assert item["status"] == "online" and item["disk_percent"] == 30.0
        updates = [f for f in c.frames if f["type"] == "fleet_update"][1:]
        assert 1 <= len(updates) < 30
        for frame in updates:
            assert [i["server_id"] for i in frame["data"]].count(str(web)) <= 1
            assert str(foreign) not in str(frame)

        # Status: a connect, then a disconnect of that connection: online, then offline.
        conn = uuid.uuid4()
        await _event(pub, topic_prefix, shared, "connected", conn)
        await _until_item(c, shared, lambda i: i["status"] == "online")
        await _event(pub, topic_prefix, shared, "disconnected", conn)
        await _until_item(c, shared, lambda i: i["status"] == "offline")
        # Silence: the online server turns stale after fleet_stale_after_seconds.
        await _until_item(c, web, lambda i: i["status"] == "stale", within=30)

        # Alerts of the user's servers come at once, a foreign server's never.
        await pub.raw(
            topics.ALERTS.name(topic_prefix), _alert(foreign, stranger).to_bytes(), topics.server_key(foreign)
        )
        mine = _alert(shared, friend)
        await pub.raw(topics.ALERTS.name(topic_prefix), mine.to_bytes(), topics.server_key(shared))
        alert = _valid(await c.until(lambda f: f["type"] == "alert"))
        assert alert["data"]["event_id"] == str(mine.event_id) and alert["data"]["severity"] == "critical"
        assert not any(f["type"] == "alert" and f["data"]["server_id"] == str(foreign) for f in c.frames)

        # Ping/pong; a client mistake is an error frame, the socket stays.
        await c.send({"type": "ping", "id": 5})
        assert _valid(await c.until(lambda f: f["type"] == "pong"))["id"] == 5
        await c.send({"type": "nonsense"})
        assert _valid(await c.until(lambda f: f["type"] == "error"))["code"] is None

        # The set changes: an unshare and a new server -> fleet_changed, then the new set only.
        await db.execute("DELETE FROM server_shares WHERE server_id = %s AND user_id = %s", (shared, owner))
        extra = await add_server(db, owner)
        await c.until(lambda f: f["type"] == "fleet_changed", within=20)
        await pub.metric(_sample(extra, 77.0))
        await pub.metric(_sample(shared, 66.0))
        await _until_item(c, extra, lambda i: i["cpu_percent"] == 77.0)
        assert str(shared) not in _items(c.frames[-1])
        assert len(api.live.fleet.entries) == 3  # web, spare and extra; no longer shared

    # The socket gone, the process holds nothing any more.
    assert api.live.hub.wanted() == {} and api.live.fleet.entries == {}


def fleet_url(api: ApiServer) -> str:
    return f"ws://127.0.0.1:{api.port}/api/v1/ws/fleet"


async def test_many_fleet_sockets_share_one_reader_and_one_update_per_message(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    owner = await add_user(db)
    servers = [await add_server(db, owner) for _ in range(20)]
    async with ApiServer(common_settings, LIVE) as api, Publisher(kafka_bootstrap, topic_prefix) as pub:
        sockets = [Client(fleet_url(api), {"type": "auth", "token": api.token(owner)}) for _ in range(5)]
        for s in sockets:
            await s.__aenter__()
        try:
            for s in sockets:
                await s.until(lambda f: f["type"] == "fleet_update")
            live = api.live
            partitions = sum([await live.partition_count(ch.topic) for ch in live.channels.fleet()], start=0)
            # One reader: every partition of the three topics held once, whatever the sockets.
            assert len(live.hub.wanted()) == partitions and len(live.fleet.subscribers) == 5
            before = live.fleet.updates
            await pub.many([_sample(s, 12.0) for s in servers])
            wanted = {str(server) for server in servers}
            for s in sockets:
                seen: set[str] = set()

                def all_seen(frame: dict[str, Any], seen: set[str] = seen) -> bool:
                    if frame["type"] == "fleet_update":
                        seen.update(k for k, i in _items(frame).items() if i["cpu_percent"] == 12.0)
                    return seen >= wanted

                await s.until(all_seen)
            assert live.fleet.updates - before == len(servers)  # once per message, not per socket
        finally:
            for s in sockets:
                await s.__aexit__(None, None, None)


async def test_fleet_socket_refusals(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any]
) -> None:
    user = await add_user(db)
    async with ApiServer(common_settings, LIVE) as api:
        async with client(fleet_url(api), {"type": "auth", "token": "garbage"}) as c:
            assert await c.closed() == CloseCode.INVALID_TOKEN
        resume = {"type": "auth", "token": api.token(user), "resume": {"partition": 0, "offset": 1}}
        async with client(fleet_url(api), resume) as c:
            assert await c.closed() == CloseCode.BAD_REQUEST
        # A token about to expire is asked for again; without a fresh one the socket closes.
        short = api.token(user, lifetime=timedelta(seconds=2))
        async with client(fleet_url(api), {"type": "auth", "token": short}) as c:
            await c.until(lambda f: f["type"] == "auth_required", within=20)
            assert await c.closed(within=20) == CloseCode.TOKEN_EXPIRED
        # A user with no server yet: an empty start, then fleet_changed when one comes; a
        # deactivated user's socket closes at the next access check.
        async with client(fleet_url(api), {"type": "auth", "token": api.token(user)}) as c:
            ok = await c.next()
            assert ok["type"] == "auth_success" and ok["servers"] == 0
            assert (await c.next()) == {"type": "fleet_update", "data": []}
            await add_server(db, user)
            await c.until(lambda f: f["type"] == "fleet_changed", within=20)
            await db.execute("UPDATE users SET is_active = false WHERE id = %s", (user,))
            assert await c.closed(within=20) == CloseCode.INVALID_TOKEN


async def _persisted(
    db: psycopg.AsyncConnection[Any], prefix: str, event: AgentEvent, at: tuple[int, int]
) -> None:
    """`event`, at (partition, offset) of the agent-events topic, stored as persistence stores it:
    the rows and `persisted_offsets` in one transaction."""
    await persist_db.prepare_connection(db)
    async with db.transaction():
        await persist_db.write_batch(
            db,
            [event],
            {(topics.AGENT_EVENTS.name(prefix), at[0]): at[1]},
            rollup_horizon=event.time - timedelta(days=1),
            stale_after=timedelta(minutes=5),
        )


async def _connected_then_unpersisted_disconnect(
    db: psycopg.AsyncConnection[Any], pub: Publisher, prefix: str, server: uuid.UUID
) -> tuple[int, int]:
    """A connect that persistence stored, then its disconnect in Kafka only (persistence behind);
    returns where the disconnect is (partition, offset)."""
    topic, key, conn = topics.AGENT_EVENTS.name(prefix), topics.server_key(server), uuid.uuid4()
    connected = AgentEvent(server_id=server, event="connected", time=datetime.now(UTC), connection_id=conn)
    await _persisted(db, prefix, connected, await pub.raw(topic, connected.to_bytes(), key))
    gone = AgentEvent(server_id=server, event="disconnected", time=datetime.now(UTC), connection_id=conn)
    return await pub.raw(topic, gone.to_bytes(), key)


async def test_a_disconnect_not_yet_persisted_still_reaches_a_new_fleet_socket(
    common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The revoked-key bug of the browser suite: an agent's disconnect is in Kafka, persistence
    has not stored it yet, and a fleet socket starts watching the server. The database says
    online and the hub reads from its live end, so without the seam the server stayed online
    for good (no later event comes for a revoked key). Both ways a server starts being watched:
    the process's first fleet socket (the hub starts at the live end), and a later socket while
    the hub already reads (the event went by while nobody watched the server)."""
    owner, other = await add_user(db), await add_user(db)
    first = await add_server(db, owner)
    async with ApiServer(common_settings, LIVE) as api, Publisher(kafka_bootstrap, topic_prefix) as pub:
        await _connected_then_unpersisted_disconnect(db, pub, topic_prefix, first)
        row = await (await db.execute("SELECT status FROM servers WHERE id = %s", (first,))).fetchone()
        assert row is not None and row[0] == "online"  # what the database alone says

        async with client(fleet_url(api), {"type": "auth", "token": api.token(owner)}) as c:
            assert _valid(await c.next())["type"] == "auth_success"
            assert _items(_valid(await c.next()))[str(first)]["status"] == "offline"

            # The hub reads now (for `owner`); another user's server, watched by nobody, has its
            # disconnect go by unpersisted; then that user opens the fleet page.
            later = await add_server(db, other)
            partition, offset = await _connected_then_unpersisted_disconnect(db, pub, topic_prefix, later)
            tp = TP(topics.AGENT_EVENTS.name(topic_prefix), partition)
            async with asyncio.timeout(30):  # the hub has read past it: only a replay brings it back
                while (span := api.live.hub.span(tp)) is None or span[1] <= offset:
                    await asyncio.sleep(0.05)
            async with client(fleet_url(api), {"type": "auth", "token": api.token(other)}) as c2:
                assert _valid(await c2.next())["type"] == "auth_success"
                assert _items(_valid(await c2.next()))[str(later)]["status"] == "offline"
