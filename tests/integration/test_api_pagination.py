"""One pagination for every list (api/pagination.py): every list of the OpenAPI document takes
`cursor` and `limit`, and paging through each with a small limit, by `next_cursor` and by the
`Link` header alike, yields every item once, in the order of the unpaged list, with `next_cursor`
null and no `Link` on the last page. Cursors are checked (altered, made up, another list's: 422),
`limit` is bounded by the setting, and the removed `offset`/`before` are refused, not ignored."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from api.pagination import PAGE_MEDIA_TYPE
from schemas.settings import CommonSettings
from tests.support.api_client import TestUser, api_settings, create_server, register, running_api
from tests.support.problems import assert_problem

PAGE = {"Accept": PAGE_MEDIA_TYPE}
# The lists the legacy REST spec answers as bare arrays: a page only when asked for by `Accept`.
LEGACY = {"/api/v1/servers", "/api/v1/api-keys/server/{server_id}", "/api/v1/alerts/thresholds"}
MAX = 60  # page_max_items in these tests: more than any list holds here


def _next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert found, link
    return found.group(1)


async def _walk(client: httpx.AsyncClient, user: TestUser, url: str, legacy: bool) -> list[Any]:
    """Every item of the list, 2 at a time: by `next_cursor` and by `Link`, which must agree."""
    headers = user.headers | (PAGE if legacy else {})
    items: list[Any] = []
    params: dict[str, Any] = {"limit": 2}
    for _ in range(100):
        r = await client.get(url, params=params, headers=headers)
        assert r.status_code == 200, (url, r.text)
        page = r.json()
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= 2, page
        items += page["items"]
        link = _next_link(r)
        if page["next_cursor"] is None:
            assert link is None, (url, link)
            return items
        assert len(page["items"]) == 2
        # The Link header is this request with the next cursor: following it gives the same page.
        assert link is not None and "cursor=" in link, (url, r.headers)
        by_link = await client.get(link, headers=headers)
        params = {"limit": 2, "cursor": page["next_cursor"]}
        by_cursor = await client.get(url, params=params, headers=headers)
        assert by_link.json() == by_cursor.json(), url
    raise AssertionError(f"{url}: no end after 100 pages")


async def _world(client: httpx.AsyncClient, db: psycopg.AsyncConnection) -> tuple[TestUser, dict[str, str]]:
    """An owner with at least 5 items in every list."""
    owner = await register(client)
    servers = [await create_server(client, owner, name=f"s{i}") for i in range(5)]
    sid = servers[0]
    for _ in range(5):
        friend = await register(client)
        r = await client.post(
            f"/api/v1/servers/{sid}/shares",
            json={"email": friend.email, "role": "viewer"},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text
        r = await client.post("/api/v1/api-keys", json={"server_id": str(sid)}, headers=owner.headers)
        assert r.status_code == 201, r.text
        threshold = {"server_id": str(sid), "metric_type": "cpu", "threshold_value": 90, "comparison": "gt"}
        r = await client.post("/api/v1/alerts/thresholds", json=threshold, headers=owner.headers)
        assert r.status_code == 201, r.text
        channel = {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"}
        r = await client.post("/api/v1/notification-channels", json=channel, headers=owner.headers)
        assert r.status_code == 201, r.text
    now = datetime.now(UTC)
    rule_id = uuid.uuid4()
    for i in range(5):
        # Two rows at each time: the id breaks the tie, and no page boundary loses one.
        at = now - timedelta(minutes=i // 2)
        await db.execute(
            """INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id, metric,
                                   severity, comparison, threshold, state, started_at, message)
               VALUES (%s, %s, 'cpu hot', 'rule', %s, %s, 'cpu', 'critical', 'gt', 90, 'firing', %s, 'x')""",
            (uuid.uuid4(), rule_id, owner.id, sid, at),
        )
        await db.execute(
            "INSERT INTO command_history (command_id, server_id, requested_by, action, command, requested_at)"
            " VALUES (%s, %s, %s, 'shell', 'uptime', %s)",
            (uuid.uuid4(), sid, owner.id, at),
        )
        await db.execute(
            "INSERT INTO logs (server_id, time, entry_id, level, message) VALUES (%s, %s, %s, 'INFO', 'x')",
            (sid, at, uuid.uuid4()),
        )
    return owner, {"server_id": str(sid)}


async def test_every_list_pages_by_cursor(
    common_settings: CommonSettings, db: psycopg.AsyncConnection
) -> None:
    settings = api_settings(common_settings, page_max_items=MAX, page_default_items=3)
    async with running_api(settings) as (app, client):
        owner, ids = await _world(client, db)
        await asyncio.sleep(0.5)  # audit rows are written after the answer is sent
        lists = [
            path
            for path, operations in app.openapi()["paths"].items()
            if "get" in operations
            and any(p["name"] == "cursor" for p in operations["get"].get("parameters", []))
        ]
        assert len(lists) == 11, lists
        for path in lists:
            url = path.format(**ids)
            legacy = path in LEGACY
            # The unpaged list (at most MAX items, all of them here) is the reference order.
            r = await client.get(url, params={"limit": MAX}, headers=owner.headers | PAGE)
            assert r.status_code == 200, (url, r.text)
            whole = r.json()["items"]
            assert len(whole) >= 5 and r.json()["next_cursor"] is None, (url, whole)
            assert await _walk(client, owner, url, legacy) == whole, url

            # `limit` left out: the default page; a legacy list answers as many as a page may hold.
            r = await client.get(url, headers=owner.headers)
            if legacy:
                assert r.headers["content-type"] == "application/json" and r.json() == whole, url
                assert r.headers["vary"] == "Accept"
            else:
                assert len(r.json()["items"]) == 3 and r.json()["next_cursor"], url
            # A legacy list's bare array pages too: `Link` carries the cursor.
            if legacy:
                r = await client.get(url, params={"limit": 2}, headers=owner.headers)
                assert r.json() == whole[:2] and _next_link(r), url

            # Bounds on limit, and cursors that are not one of this list's.
            for bad in (0, MAX + 1):
                problem = assert_problem(
                    await client.get(url, params={"limit": bad}, headers=owner.headers), 422
                )
                assert problem["errors"][0]["loc"] == ["query", "limit"], problem
            cursor = (await client.get(url, params={"limit": 1}, headers=owner.headers | PAGE)).json()[
                "next_cursor"
            ]
            for forged in ("nonsense", cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), cursor + "x"):
                r = await client.get(url, params={"cursor": forged}, headers=owner.headers)
                problem = assert_problem(r, 422, "validation-error")
                assert problem["errors"][0]["type"] == "invalid_cursor", (url, problem)
        # One list's cursor is refused by another (both are (time, id) keysets).
        cursor = (await client.get("/api/v1/alerts", params={"limit": 1}, headers=owner.headers)).json()[
            "next_cursor"
        ]
        r = await client.get(
            "/api/v1/commands/{server_id}/history".format(**ids),
            params={"cursor": cursor},
            headers=owner.headers,
        )
        assert assert_problem(r, 422)["errors"][0]["type"] == "invalid_cursor"


async def test_removed_parameters_are_refused(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        owner = await register(client)
        sid = await create_server(client, owner)
        for url, name, value in (
            ("/api/v1/servers", "offset", "10"),
            ("/api/v1/alerts", "before", "2026-01-01T00:00:00Z"),
            ("/api/v1/audit/me", "before", "5"),
            (f"/api/v1/audit/servers/{sid}", "before", "5"),
            (f"/api/v1/commands/{sid}/history", "before", "2026-01-01T00:00:00Z"),
        ):
            problem = assert_problem(await client.get(url, params={name: value}, headers=owner.headers), 422)
            assert problem["errors"][0]["loc"] == ["query", name] and "cursor" in problem["detail"], problem
            assert problem["errors"][0]["type"] == "parameter_removed"


async def test_cursors_survive_inserts_and_work_across_processes(common_settings: CommonSettings) -> None:
    """A keyset, not an offset: items added meanwhile neither repeat nor hide what follows; and a
    cursor from one API process is accepted by another (same secret)."""
    async with (
        running_api(api_settings(common_settings)) as (_, first),
        running_api(api_settings(common_settings)) as (_, second),
    ):
        owner = await register(first)
        made = [str(await create_server(first, owner, name=f"s{i}")) for i in range(4)]
        r = await first.get("/api/v1/servers", params={"limit": 2}, headers=owner.headers | PAGE)
        page = r.json()
        assert [s["id"] for s in page["items"]] == made[:2]
        later = str(await create_server(first, owner, name="later"))
        r = await second.get(
            "/api/v1/servers",
            params={"limit": 10, "cursor": page["next_cursor"]},
            headers=owner.headers | PAGE,
        )
        assert r.status_code == 200, r.text
        assert [s["id"] for s in r.json()["items"]] == [*made[2:], later]
