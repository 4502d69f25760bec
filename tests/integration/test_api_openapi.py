"""The OpenAPI document says what the API answers: every operation is walked (without
credentials, with a bad token, as a stranger, as a viewer, as the owner with a valid and with an
invalid request), and any answer whose status the operation does not list, or an error answer that
is not problem details of a kind listed for that status, fails the test. Every error kind that
docs/api.md documents is in the document with the problem schema; tags and security schemes are
declared."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import psycopg

from schemas.asyncapi import document
from schemas.problems import KINDS, PROBLEM_MEDIA_TYPE
from schemas.settings import CommonSettings
from tests.integration.test_api_access import ROUTES, _world
from tests.support.api_client import api_settings, running_api
from tests.support.openapi_check import unlisted

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _order(key: tuple[str, str]) -> tuple[int, int]:
    """Deletions last, the server's own deletion very last: the other routes still find it."""
    method, path = key
    return (method == "DELETE", path == "/api/v1/servers/{server_id}")


async def test_every_answer_is_listed_by_its_operation(
    db: psycopg.AsyncConnection, common_settings: CommonSettings
) -> None:
    async with running_api(api_settings(common_settings)) as (app, client):
        doc = app.openapi()
        owner, viewer, stranger, ids = await _world(client, db, common_settings)
        failures: list[str] = []
        seen: set[tuple[str, str, int]] = set()
        for method, path in sorted(ROUTES, key=_order):
            _, body = ROUTES[(method, path)]
            template = path.split("?")[0]
            operation = doc["paths"][template][method.lower()]
            url = path.format(**ids, name="fleetpulse_agent-0-py3-none-any.whl")
            payload = body(ids) if body else None
            attempts: list[tuple[str, dict[str, str], Any, str]] = [
                ("anonymous", {}, payload, url),
                ("bad token", {"Authorization": "Bearer nonsense"}, payload, url),
                ("stranger", stranger.headers, payload, url),
                ("viewer", viewer.headers, payload, url),
                ("owner, bad body", owner.headers, [1, "x"], url),
                ("owner", owner.headers, payload, url),
            ]
            if "{" in template:
                bad = re.sub(r"\{[^}]+\}", "not-an-id", template)
                attempts.append(("owner, bad path", owner.headers, payload, bad))
            for who, headers, json_body, target in attempts:
                r = await client.request(method, target, json=json_body, headers=headers)
                seen.add((method, template, r.status_code))
                why = unlisted(operation, r)
                if why is not None:
                    failures.append(f"{method} {template} as {who}: {why}")
        assert failures == [], "\n".join(failures)
        # The walk reached past authentication and validation: successes, 403s and 404s too.
        statuses = {status for _, _, status in seen}
        assert {200, 201, 204, 401, 403, 404, 422} <= statuses, statuses


def _responses(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (status, response)
        for operations in doc["paths"].values()
        for operation in operations.values()
        for status, response in operation["responses"].items()
    ]


async def test_documented_errors_are_in_the_document(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (app, _):
        doc = app.openapi()
    documented = re.findall(r"^\| `/problems/([a-z-]+)` \| (\d{3}) \|", DOCS.read_text(), re.MULTILINE)
    assert {slug for slug, _ in documented} == set(KINDS), "docs/api.md's table and the catalogue differ"
    listed: dict[str, set[str]] = {}
    for status, response in _responses(doc):
        if status.startswith(("4", "5")):
            content = response["content"]
            assert list(content) == [PROBLEM_MEDIA_TYPE], content
            assert content[PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
            for example in content[PROBLEM_MEDIA_TYPE]["examples"].values():
                listed.setdefault(example["value"]["type"], set()).add(status)
    for slug, status in documented:
        kind = KINDS[slug]
        assert str(kind.status) == status, slug
        component = doc["components"]["responses"][slug]
        assert component["content"][PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
        # 405 is routing's (a known path, another method): no operation answers it.
        if slug != "method-not-allowed":
            assert listed.get(kind.type) == {status}, (slug, listed.get(kind.type))


async def test_tags_and_security_are_declared(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (app, _):
        doc = app.openapi()
    declared = {tag["name"]: tag for tag in doc["tags"]}
    assert all(tag.get("description") for tag in declared.values())
    schemes = doc["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["ApiKeyHeader"] == {
        **schemes["ApiKeyHeader"],
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert len(operation["tags"]) == 1 and operation["tags"][0] in declared, (method, path)
            if path.startswith("/api/v1/") and not path.startswith("/api/v1/auth/"):
                assert operation.get("security"), (method, path)
    assert doc["paths"]["/api/v1/api-keys/me"]["get"]["security"] == [{"ApiKeyHeader": []}]


async def test_asyncapi_is_served_and_rendered_without_the_internet(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        served = await client.get("/asyncapi.json")
        page = await client.get("/asyncapi")
    assert served.status_code == 200 and served.json() == document()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for channel in document()["channels"].values():
        assert html.escape(channel["address"]) in page.text
    # Nothing on the page is fetched from another host.
    assert re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", page.text) == []
