"""Cross-user access, walked from the OpenAPI document: every route is in `ROUTES` (a new route
fails this test until it is classified), and for every route that touches another user's
resource, a stranger gets 404 and a viewer gets 403 where more than viewing is needed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.canonical import ContainerSample, MetricSample
from schemas.settings import CommonSettings
from tests.support.api_client import TestUser, api_settings, create_server, register, running_api
from tests.support.problems import assert_problem

# What a route needs, on whose resource:
#   viewer / operator / owner: a role on the owner's server (stranger 404; below the role 403)
#   private: the owner's own object (a rule): anyone else 404
#   none: no other user's resource is reachable through it (checked for leaks elsewhere)
Need = str
Ids = dict[str, str]
Body = Callable[[Ids], Any] | None

NOW = datetime.now(UTC)
RANGE = {"start": (NOW - timedelta(hours=1)).isoformat(), "end": NOW.isoformat()}


def _rule(ids: Ids) -> dict[str, Any]:
    return {"server_id": ids["server_id"], "name": "cpu high", "metric": "cpu", "threshold": 90}


def _threshold(ids: Ids) -> dict[str, Any]:
    return {"server_id": ids["server_id"], "metric_type": "cpu", "threshold_value": 80, "comparison": "gt"}


ROUTES: dict[tuple[str, str], tuple[Need, Body]] = {
    ("POST", "/api/v1/auth/register"): ("none", None),
    ("POST", "/api/v1/auth/login"): ("none", None),
    ("POST", "/api/v1/auth/login/json"): ("none", None),
    ("POST", "/api/v1/auth/refresh"): ("none", None),
    ("POST", "/api/v1/auth/logout"): ("none", None),
    ("GET", "/api/v1/auth/me"): ("none", None),
    ("POST", "/api/v1/auth/password"): ("none", None),
    ("POST", "/api/v1/servers"): ("none", None),
    ("GET", "/api/v1/servers"): ("none", None),
    ("GET", "/api/v1/servers/{server_id}"): ("viewer", None),
    ("GET", "/api/v1/fleet"): ("none", None),
    ("PUT", "/api/v1/servers/{server_id}"): ("owner", lambda ids: {"name": "taken over"}),
    ("DELETE", "/api/v1/servers/{server_id}"): ("owner", None),
    ("PUT", "/api/v1/servers/{server_id}/commands"): ("owner", lambda ids: {"commands_enabled": True}),
    ("GET", "/api/v1/servers/{server_id}/shares"): ("owner", None),
    ("POST", "/api/v1/servers/{server_id}/shares"): (
        "owner",
        lambda ids: {"email": ids["email"], "role": "owner"},
    ),
    ("DELETE", "/api/v1/servers/{server_id}/shares/{user_id}"): ("owner", None),
    ("POST", "/api/v1/api-keys"): ("owner", lambda ids: {"server_id": ids["server_id"], "name": "mine"}),
    ("GET", "/api/v1/api-keys/me"): ("none", None),
    ("GET", "/api/v1/api-keys/server/{server_id}"): ("owner", None),
    ("POST", "/api/v1/api-keys/{key_id}/deactivate"): ("owner", None),
    ("DELETE", "/api/v1/api-keys/{key_id}"): ("owner", None),
    ("GET", "/api/v1/metrics/{server_id}/latest"): ("viewer", None),
    ("GET", "/api/v1/metrics/{server_id}/processes"): ("viewer", None),
    ("GET", "/api/v1/metrics/{server_id}/history"): ("viewer", None),
    ("GET", "/api/v1/metrics/{server_id}/disks/history?mount=/"): ("viewer", None),
    ("GET", "/api/v1/metrics/{server_id}/interfaces/history?interface=eth0"): ("viewer", None),
    ("GET", "/api/v1/logs/{server_id}"): ("viewer", None),
    ("POST", "/api/v1/commands/{server_id}"): ("operator", lambda ids: {"command": "uptime"}),
    ("GET", "/api/v1/commands/{server_id}/history"): ("operator", None),
    ("GET", "/api/v1/docker/{server_id}/containers"): ("viewer", None),
    ("POST", "/api/v1/docker/{server_id}/containers/{container_id}/{action}"): ("operator", None),
    ("GET", "/api/v1/docker/{server_id}/containers/{container_id}/logs"): ("operator", None),
    ("POST", "/api/v1/alerts/rules"): ("operator", _rule),
    ("GET", "/api/v1/alerts/rules"): ("none", None),
    ("GET", "/api/v1/alerts/rules/{rule_id}"): ("private", None),
    ("PUT", "/api/v1/alerts/rules/{rule_id}"): ("private", _rule),
    ("DELETE", "/api/v1/alerts/rules/{rule_id}"): ("private", None),
    ("GET", "/api/v1/alerts/thresholds"): ("none", None),
    ("POST", "/api/v1/alerts/thresholds"): ("operator", _threshold),
    ("PUT", "/api/v1/alerts/thresholds/{threshold_id}"): ("private", _threshold),
    ("DELETE", "/api/v1/alerts/thresholds/{threshold_id}"): ("private", None),
    ("GET", "/api/v1/alerts"): ("none", None),
    ("POST", "/api/v1/alerts/{episode_id}/acknowledge"): ("operator", None),
    ("POST", "/api/v1/alerts/{episode_id}/resolve"): ("operator", None),
    ("POST", "/api/v1/alerts/backtest"): ("operator", lambda ids: {**RANGE, "rule": _rule(ids)}),
    ("POST", "/api/v1/alerts/rules/{rule_id}/backtest"): ("private", lambda ids: RANGE),
    ("POST", "/api/v1/notification-channels"): ("none", None),
    ("GET", "/api/v1/notification-channels"): ("none", None),
    ("GET", "/api/v1/notification-channels/{channel_id}"): ("private", None),
    ("PUT", "/api/v1/notification-channels/{channel_id}"): ("private", lambda ids: {"name": "taken over"}),
    ("DELETE", "/api/v1/notification-channels/{channel_id}"): ("private", None),
    ("POST", "/api/v1/notification-channels/{channel_id}/test"): ("private", None),
    ("GET", "/api/v1/audit/servers/{server_id}"): ("owner", None),
    ("GET", "/api/v1/audit/me"): ("none", None),
    ("GET", "/install.sh"): ("none", None),  # public: the agent's install script and wheels
    ("GET", "/agent/wheels/"): ("none", None),
    ("GET", "/agent/wheels/{name}"): ("none", None),
    ("GET", "/health"): ("none", None),
    ("GET", "/ready"): ("none", None),
    ("GET", "/metrics"): ("none", None),
}


def _template(key: tuple[str, str]) -> tuple[str, str]:
    return key[0], key[1].split("?")[0]


@pytest.fixture
async def client(common_settings: CommonSettings):
    async with running_api(api_settings(common_settings)) as (app, c):
        yield app, c


async def _world(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection, common: CommonSettings
) -> tuple[TestUser, TestUser, TestUser, Ids]:
    owner, viewer, stranger = await register(client), await register(client), await register(client)
    server_id = await create_server(client, owner)
    r = await client.post(
        f"/api/v1/servers/{server_id}/shares",
        json={"email": viewer.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    key = await client.post("/api/v1/api-keys", json={"server_id": str(server_id)}, headers=owner.headers)
    assert key.status_code == 201, key.text
    rule = await client.post(
        "/api/v1/alerts/rules", json=_rule({"server_id": str(server_id)}), headers=owner.headers
    )
    assert rule.status_code == 201, rule.text
    threshold = await client.post(
        "/api/v1/alerts/thresholds", json=_threshold({"server_id": str(server_id)}), headers=owner.headers
    )
    assert threshold.status_code == 201, threshold.text
    channel = await client.post(
        "/api/v1/notification-channels",
        json={"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x", "server_id": str(server_id)},
        headers=owner.headers,
    )
    assert channel.status_code == 201, channel.text
    episode_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id, metric,
                               severity, comparison, threshold, state, started_at, fired_at, message)
           VALUES (%s, %s, 'cpu high', 'rule', %s, %s, 'cpu', 'warning', 'gt', 90, 'firing', now(),
                   now(), 'hot')""",
        (episode_id, rule.json()["id"], owner.id, server_id),
    )
    # A sample with containers on the metrics topic, for the containers list.
    producer = AIOKafkaProducer(bootstrap_servers=common.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        now = datetime.now(UTC)
        sample = MetricSample(
            server_id=server_id,
            time=now,
            received_at=now,
            cpu_percent=1.0,
            memory_percent=2.0,
            containers=(ContainerSample(id="abc", name="web", state="running"),),
        )
        await producer.send_and_wait(
            topics.METRICS.name(common.topic_prefix), sample.to_bytes(), key=topics.server_key(server_id)
        )
    finally:
        await producer.stop()
    ids = {
        "server_id": str(server_id),
        "user_id": str(viewer.id),
        "key_id": key.json()["id"],
        "rule_id": rule.json()["id"],
        "threshold_id": threshold.json()["id"],
        "episode_id": str(episode_id),
        "channel_id": channel.json()["id"],
        "container_id": "web",
        "action": "restart",
        "email": stranger.email,
    }
    return owner, viewer, stranger, ids


async def test_every_route_is_classified_and_refuses_other_users(
    client, db: psycopg.AsyncConnection, common_settings: CommonSettings
) -> None:
    app, c = client
    documented = {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }
    classified = {_template(key) for key in ROUTES}
    assert documented - classified == set(), "classify the new routes in ROUTES"
    assert classified - documented == set(), "ROUTES names routes that no longer exist"

    owner, viewer, stranger, ids = await _world(c, db, common_settings)
    checked = 0
    for (method, path), (need, body) in ROUTES.items():
        if need == "none":
            continue
        url = path.format(**ids)
        payload = body(ids) if body else None
        for who, expected in ((stranger, 404), (viewer, 404 if need == "private" else 403)):
            if who is viewer and need == "viewer":
                continue
            r = await c.request(method, url, json=payload, headers=who.headers)
            assert r.status_code == expected, (
                f"{method} {url} as {'viewer' if who is viewer else 'stranger'}: {r.status_code} {r.text}"
            )
            # A problem whose `instance` echoes the caller's own path; nothing else names the server.
            answer = assert_problem(r, expected)
            del answer["instance"]
            assert ids["server_id"] not in json.dumps(answer) or need == "private"
            checked += 1
    assert checked > 40

    # Viewer routes do answer the viewer (so the 404s above are about access, not broken routes).
    for (method, path), (need, _) in ROUTES.items():
        if need == "viewer":
            r = await c.request(method, path.format(**ids), headers=viewer.headers)
            assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"

    # Lists leak nothing: the stranger sees none of the owner's servers, rules or alerts.
    for url in (
        "/api/v1/servers",
        "/api/v1/fleet",
        "/api/v1/alerts/rules",
        "/api/v1/alerts/thresholds",
        "/api/v1/alerts",
        "/api/v1/notification-channels",
    ):
        r = await c.get(url, headers=stranger.headers)
        assert r.status_code == 200 and ids["server_id"] not in r.text, url
    # The stranger's own trail holds their refused attempts, and nobody else's rows.
    trail = (await c.get("/api/v1/audit/me", headers=stranger.headers)).json()["items"]
    assert trail and {row["user_id"] for row in trail} == {str(stranger.id)}
    assert all(row["status"] in (403, 404) for row in trail if row["server_id"] == ids["server_id"])
    # ... and the viewer sees the shared server with its role, and its alerts.
    servers = (await c.get("/api/v1/servers", headers=viewer.headers)).json()
    assert [(s["id"], s["role"]) for s in servers] == [(ids["server_id"], "viewer")]
    containers = (await c.get(f"/api/v1/docker/{ids['server_id']}/containers", headers=viewer.headers)).json()
    assert [(x["id"], x["name"], x["state"]) for x in containers["containers"]] == [("abc", "web", "running")]
    alerts = (await c.get("/api/v1/alerts", headers=viewer.headers)).json()["items"]
    assert [a["episode_id"] for a in alerts] == [ids["episode_id"]]

    # Nothing was changed by the refused requests.
    r = await c.get(f"/api/v1/servers/{ids['server_id']}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["name"] == "web-1" and r.json()["commands_enabled"] is False
    keys = (await c.get(f"/api/v1/api-keys/server/{ids['server_id']}", headers=owner.headers)).json()
    assert [k["is_active"] for k in keys] == [True]
    rules = (await c.get("/api/v1/alerts/rules", headers=owner.headers)).json()["items"]
    assert len(rules) == 2  # the rule and the threshold
    shares = (await c.get(f"/api/v1/servers/{ids['server_id']}/shares", headers=owner.headers)).json()[
        "items"
    ]
    assert [(s["user_id"], s["role"]) for s in shares] == [(str(viewer.id), "viewer")]
    channel = (
        await c.get(f"/api/v1/notification-channels/{ids['channel_id']}", headers=owner.headers)
    ).json()
    assert channel["name"] == "hook"


async def test_unauthenticated_requests_are_refused_everywhere(client) -> None:
    _, c = client
    open_routes = {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/login/json"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/api-keys/me"),  # authenticated by X-API-Key instead
        ("GET", "/install.sh"),
        ("GET", "/agent/wheels/"),
        ("GET", "/agent/wheels/{name}"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
    }
    ids = {
        k: str(uuid.uuid4())
        for k in ("server_id", "user_id", "key_id", "rule_id", "threshold_id", "episode_id", "channel_id")
    }
    ids |= {"container_id": "web", "action": "start", "email": "x@example.com"}
    for method, path in (_template(k) for k in ROUTES):
        if (method, path) in open_routes:
            continue
        r = await c.request(method, path.format(**ids), headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code in (401, 422), f"{method} {path}: {r.status_code}"
        if r.status_code == 422:  # a body is missing: the same request with a body is still 401
            r = await c.request(method, path.format(**ids), json={}, headers={"Authorization": "Bearer x"})
            assert r.status_code in (401, 422), f"{method} {path}: {r.status_code}"
    assert (await c.get("/api/v1/api-keys/me")).status_code == 401
