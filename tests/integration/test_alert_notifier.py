"""The notifier on the real Kafka and TimescaleDB, delivering to real HTTP receivers on
127.0.0.1: retries with backoff, one delivery per episode state change, across restarts too."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import psycopg
import pytest
from aiohttp import web

from schemas.alerts import ALERT_EVENT
from stream_processors.alerts.delivery import verify
from tests.support.alerts import (
    AlertEnv,
    Bus,
    Sentinel,
    add_owner_with_servers,
    episodes,
    free_port,
    make_rule,
    make_sample,
    rules_loaded,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)
SECRET = "s3cret-shared-with-the-receiver"


@dataclass
class Receiver:
    """Fails the first `failures` requests of each state change, then answers 200."""

    failures: int = 2
    requests: Counter[str] = field(default_factory=Counter)
    delivered: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    bad_signatures: int = 0

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = ALERT_EVENT.validate_json(body)
        signature = request.headers.get("X-FleetPulse-Signature", "")
        if not verify(SECRET, request.headers["X-FleetPulse-Timestamp"], body, signature):
            self.bad_signatures += 1
            return web.Response(status=401)
        assert request.headers["X-FleetPulse-Event-Id"] == str(event.event_id)
        return self._answer(f"webhook:{event.state}", body)

    async def slack(self, request: web.Request) -> web.Response:
        body = await request.read()
        text = orjson.loads(body)["text"]
        state = "firing" if "rotating_light" in text else "resolved"
        return self._answer(f"slack:{state}", body)

    def _answer(self, key: str, body: bytes) -> web.Response:
        self.requests[key] += 1
        if self.requests[key] <= self.failures:
            return web.Response(status=503)
        self.delivered[key].append(body)
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.webhook)
    app.router.add_post("/slack", rec.slack)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield rec, port
    finally:
        await runner.cleanup()


async def test_a_receiver_failing_twice_gets_exactly_one_delivery_per_state_change(
    alert_env: AlertEnv, receiver: tuple[Receiver, int]
) -> None:
    rec, port = receiver
    dsn = alert_env.common.database_url
    owner, (server,) = await add_owner_with_servers(dsn, 1)
    rule = make_rule(server, owner, severity="critical")
    hook, slack = uuid.uuid4(), uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO alert_rules (id, owner_id, server_id, definition) VALUES (%s, %s, %s, %s)",
            (rule.rule_id, owner, server, rule.model_dump_json()),
        )
        for channel, kind, path, secret in (
            (hook, "webhook", "hook", SECRET),
            (slack, "slack", "slack", None),
        ):
            await conn.execute(
                """INSERT INTO notification_channels (id, owner_id, name, kind, url, secret, rule_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                (channel, owner, kind, kind, f"http://127.0.0.1:{port}/{path}", secret, rule.rule_id),
            )
    first = alert_env.worker(f"alerts-notify-{uuid.uuid4().hex[:6]}").start()
    async with Bus(alert_env) as bus:
        sentinel = Sentinel(bus, dsn, server, owner)
        await sentinel.install()
        await bus.rule(rule)
        await rules_loaded([first], sentinel, rule)
        await bus.samples([make_sample(server, 0, 95), make_sample(server, 10, 50)])  # fires, resolves

        async def all_delivered() -> bool:
            return all(len(rec.delivered[k]) >= 1 for k in ("webhook:firing", "webhook:resolved"))

        await wait_for("webhook deliveries", all_delivered, workers=[first])
        await wait_for("slack deliveries", lambda: _slack_done(rec), workers=[first])
        await sentinel.mark(20, [first])
        # A worker of a new group reads everything again (the metrics, so it re-emits the same
        # events, and the alerts topic): the delivery log says those were delivered already.
        second = alert_env.worker(f"alerts-notify-{uuid.uuid4().hex[:6]}").start()
        await sentinel.mark(30, [first, second], within=120)

        async def second_caught_up() -> bool:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM notification_deliveries WHERE channel_id = ANY(%s)",
                    ([hook, slack],),
                )
                row = await cur.fetchone()
            return row is not None and row[0] == 4

        await wait_for("the delivery log", second_caught_up)
        await asyncio.sleep(2)  # room for a wrong extra delivery to show up
    assert rec.bad_signatures == 0
    # Two failures then one success for each state change of each channel, and nothing more.
    assert dict(rec.requests) == {
        "webhook:firing": 3,
        "webhook:resolved": 3,
        "slack:firing": 3,
        "slack:resolved": 3,
    }
    assert {k: len(v) for k, v in rec.delivered.items()} == {
        "webhook:firing": 1,
        "webhook:resolved": 1,
        "slack:firing": 1,
        "slack:resolved": 1,
    }
    (episode,) = await episodes(dsn, rule.rule_id)
    fired = ALERT_EVENT.validate_json(rec.delivered["webhook:firing"][0])
    assert fired.episode_id == episode["episode_id"] and fired.severity == "critical"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            """SELECT channel_id, state, status, attempts, last_status_code FROM notification_deliveries
                WHERE episode_id = %s ORDER BY channel_id, state""",
            (episode["episode_id"],),
        )
        log = await cur.fetchall()
    assert sorted(log) == sorted(
        (channel, state, "delivered", 3, 200) for channel in (hook, slack) for state in ("firing", "resolved")
    )


async def _slack_done(rec: Receiver) -> bool:
    return all(len(rec.delivered[k]) >= 1 for k in ("slack:firing", "slack:resolved"))
