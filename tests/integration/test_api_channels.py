"""Notification channels over HTTP on the real database, with real HTTP receivers on 127.0.0.1
for the test send: owner-only access, write-only secrets, URL and assignment checks, the signed
test message, pagination, the per-user bound and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web

from schemas.alerts import ALERT_EVENT
from schemas.notifications import verify
from schemas.settings import CommonSettings
from tests.support.alerts import free_port
from tests.support.api_client import api_settings, create_server, register, running_api

SECRET = "receiver-knows-this-secret"


@dataclass
class Receiver:
    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield state, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def test_channels_crud_access_and_test_send(
    common_settings: CommonSettings, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    async with running_api(api_settings(common_settings)) as (_, client):
        owner, other, coowner = await register(client), await register(client), await register(client)
        server = await create_server(client, owner)
        theirs = await create_server(client, other, "theirs")
        for email, role in ((other.email, "viewer"), (coowner.email, "owner")):
            r = await client.post(
                f"/api/v1/servers/{server}/shares", json={"email": email, "role": role}, headers=owner.headers
            )
            assert r.status_code == 201
        rule = await client.post(
            "/api/v1/alerts/rules",
            json={"server_id": str(server), "name": "cpu", "metric": "cpu", "threshold": 90},
            headers=owner.headers,
        )
        assert rule.status_code == 201, rule.text
        rule_id = rule.json()["id"]

        body = {
            "name": "ops hook",
            "kind": "webhook",
            "url": url,
            "secret": SECRET,
            "server_id": str(server),
            "rule_id": rule_id,
            "enabled": True,
        }
        r = await client.post("/api/v1/notification-channels", json=body, headers=owner.headers)
        assert r.status_code == 201, r.text
        channel = r.json()
        assert SECRET not in r.text and "secret" not in channel
        assert channel["has_secret"] is True and channel["server_id"] == str(server)
        assert channel["rule_id"] == rule_id and channel["kind"] == "webhook" and channel["url"] == url
        cid = channel["id"]
        got = await client.get(f"/api/v1/notification-channels/{cid}", headers=owner.headers)
        assert got.json() == channel and SECRET not in got.text

        # Nobody else reaches it: 404 everywhere, and their list is empty.
        for who in (other, coowner):
            for method, path, payload in (
                ("GET", f"/api/v1/notification-channels/{cid}", None),
                ("PUT", f"/api/v1/notification-channels/{cid}", {"name": "mine now"}),
                ("POST", f"/api/v1/notification-channels/{cid}/test", None),
                ("DELETE", f"/api/v1/notification-channels/{cid}", None),
            ):
                r = await client.request(method, path, json=payload, headers=who.headers)
                assert r.status_code == 404, (method, path, r.status_code)
            r = await client.get("/api/v1/notification-channels", headers=who.headers)
            assert r.json() == {"items": [], "next_cursor": None}
        assert len(hook.requests) == 0

        # URLs: http(s) with a host, nothing else.
        for bad in (
            "ftp://example.com/x",
            "http://",
            "javascript:alert(1)",
            "http://exa mple.com/",
            "h" * 3000,
        ):
            r = await client.post(
                "/api/v1/notification-channels", json={**body, "url": bad}, headers=owner.headers
            )
            assert r.status_code == 422, (bad, r.text)
        r = await client.post(
            "/api/v1/notification-channels", json={**body, "kind": "email"}, headers=owner.headers
        )
        assert r.status_code == 422
        # Assignment: a server the caller does not own, a rule that is not theirs.
        r = await client.post(
            "/api/v1/notification-channels", json={**body, "server_id": str(theirs)}, headers=owner.headers
        )
        assert r.status_code == 404  # a stranger's server is not revealed
        r = await client.post(
            "/api/v1/notification-channels",
            json={**body, "server_id": str(server), "rule_id": None},
            headers=other.headers,
        )
        assert r.status_code == 403  # a viewer of the server
        r = await client.post(
            "/api/v1/notification-channels",
            json={**body, "server_id": str(server), "rule_id": None},
            headers=coowner.headers,
        )
        assert r.status_code == 403 and "owner" in r.json()["detail"]  # alerts notify the owner's
        r = await client.post(
            "/api/v1/notification-channels",
            json={**body, "server_id": None, "rule_id": rule_id},
            headers=other.headers,
        )
        assert r.status_code == 404  # someone else's rule
        r = await client.put(
            f"/api/v1/notification-channels/{cid}", json={"server_id": str(theirs)}, headers=owner.headers
        )
        assert r.status_code == 404

        # The test send: a signed webhook with the AlertEvent, exactly as alerts are sent.
        r = await client.post(f"/api/v1/notification-channels/{cid}/test", headers=owner.headers)
        assert r.status_code == 200 and r.json() == {"delivered": True, "status_code": 200, "error": None}
        headers, sent = hook.requests[-1]
        assert verify(SECRET, headers["X-FleetPulse-Timestamp"], sent, headers["X-FleetPulse-Signature"])
        event = ALERT_EVENT.validate_json(sent)
        assert headers["X-FleetPulse-Event-Id"] == str(event.event_id)
        assert event.state == "firing" and "test" in event.message.lower()
        assert str(event.server_id) == str(server) and str(event.rule_id) == rule_id
        hook.status = 500
        r = await client.post(f"/api/v1/notification-channels/{cid}/test", headers=owner.headers)
        assert r.json() == {"delivered": False, "status_code": 500, "error": "HTTP 500"}
        assert ALERT_EVENT.validate_json(hook.requests[-1][1]).event_id != event.event_id  # a fresh one
        hook.status = 200

        # Update: clear the secret (no signature any more), change the name; omitted fields stay.
        r = await client.put(
            f"/api/v1/notification-channels/{cid}",
            json={"secret": None, "name": "renamed"},
            headers=owner.headers,
        )
        assert r.status_code == 200, r.text
        updated = r.json()
        assert updated["has_secret"] is False and updated["name"] == "renamed"
        assert updated["url"] == url and updated["rule_id"] == rule_id and updated["enabled"] is True
        assert updated["updated_at"] > channel["updated_at"]
        r = await client.post(f"/api/v1/notification-channels/{cid}/test", headers=owner.headers)
        assert r.json()["delivered"] is True and "X-FleetPulse-Signature" not in hook.requests[-1][0]
        r = await client.put(
            f"/api/v1/notification-channels/{cid}",
            json={"server_id": None, "rule_id": None, "enabled": False},
            headers=owner.headers,
        )
        assert (r.json()["server_id"], r.json()["rule_id"], r.json()["enabled"]) == (None, None, False)
        r = await client.put(
            f"/api/v1/notification-channels/{cid}", json={"url": "file:///etc"}, headers=owner.headers
        )
        assert r.status_code == 422

        # Slack: a Slack-compatible body; an unreachable receiver: not delivered, no status.
        r = await client.post(
            "/api/v1/notification-channels",
            json={"name": "slack", "kind": "slack", "url": url},
            headers=owner.headers,
        )
        slack_id = r.json()["id"]
        assert r.json()["has_secret"] is False and r.json()["enabled"] is True
        r = await client.post(f"/api/v1/notification-channels/{slack_id}/test", headers=owner.headers)
        assert r.json()["delivered"] is True
        assert "test" in orjson.loads(hook.requests[-1][1])["text"].lower()
        r = await client.post(
            "/api/v1/notification-channels",
            json={"name": "dead", "kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/x"},
            headers=owner.headers,
        )
        dead = r.json()["id"]
        r = await client.post(f"/api/v1/notification-channels/{dead}/test", headers=owner.headers)
        result = r.json()
        assert result["delivered"] is False and result["status_code"] is None and result["error"]

        # Pages: oldest first, a cursor until the end.
        r = await client.get("/api/v1/notification-channels", params={"limit": 2}, headers=owner.headers)
        page = r.json()
        assert [c["id"] for c in page["items"]] == [cid, slack_id] and page["next_cursor"]
        r = await client.get(
            "/api/v1/notification-channels",
            params={"limit": 2, "cursor": page["next_cursor"]},
            headers=owner.headers,
        )
        assert [c["id"] for c in r.json()["items"]] == [dead] and r.json()["next_cursor"] is None
        r = await client.get(
            "/api/v1/notification-channels", params={"cursor": "nonsense"}, headers=owner.headers
        )
        assert r.status_code == 422
        r = await client.get("/api/v1/notification-channels", params={"limit": 1001}, headers=owner.headers)
        assert r.status_code == 422

        # Delete, then it is gone.
        r = await client.delete(f"/api/v1/notification-channels/{dead}", headers=owner.headers)
        assert r.status_code == 204
        r = await client.get(f"/api/v1/notification-channels/{dead}", headers=owner.headers)
        assert r.status_code == 404

        # Every change is in the owner's audit trail, with the channel id.
        await asyncio.sleep(0.2)  # the audit row is written after the answer is sent
        trail = (await client.get("/api/v1/audit/me", headers=owner.headers)).json()["items"]
        actions = [(row["action"], row["detail"].get("channel_id"), row["status"]) for row in trail]
        assert ("create_channel", cid, 201) in actions
        assert ("update_channel", cid, 200) in actions
        assert ("test_channel", cid, 200) in actions
        assert ("delete_channel", dead, 204) in actions
        tests = [
            row for row in trail if row["action"] == "test_channel" and row["detail"]["channel_id"] == cid
        ]
        assert {row["detail"]["delivered"] for row in tests} == {"True", "False"}

    # The per-user bound is a setting.
    async with running_api(api_settings(common_settings, channels_max_per_user=1)) as (_, client):
        user = await register(client)
        one = {"name": "a", "kind": "webhook", "url": url}
        assert (
            await client.post("/api/v1/notification-channels", json=one, headers=user.headers)
        ).status_code == 201
        r = await client.post("/api/v1/notification-channels", json=one, headers=user.headers)
        assert r.status_code == 422 and "at most 1" in r.json()["detail"]
