"""Every kind of error answer is problem details (RFC 9457): routing's 404 and 405, 400 from the
framework, 401 (missing, invalid and expired tokens), 403, 404, 409, 422 with the fields at fault,
429 with Retry-After, 503, and the pages that describe each problem type. (500: the unit tests of
api/errors.py; 502, 503 for an offline agent and 504: the command tests.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt

from schemas.problems import KINDS
from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, create_server, register, running_api
from tests.support.problems import assert_problem


async def test_every_error_kind_is_problem_details(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings, login_attempts=2)) as (_, client):
        owner, other = await register(client), await register(client)
        server_id = await create_server(client, owner)

        # Routing: an unknown path, and a known path with the wrong method (Allow says which).
        assert_problem(await client.get("/api/v1/no-such-thing"), 404, "not-found")
        wrong = await client.patch(f"/api/v1/servers/{server_id}", headers=owner.headers)
        assert_problem(wrong, 405, "method-not-allowed")
        assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PUT", "DELETE"}

        # A form body the framework cannot parse at all: 400.
        garbled = await client.post(
            "/api/v1/auth/login",
            content=b"--x\r\nnot a part",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert_problem(garbled, 400, "bad-request")

        # 401: no token, a bad one, an expired one (its own kind: refresh and retry).
        missing = assert_problem(await client.get("/api/v1/servers"), 401, "unauthorized")
        assert missing["detail"] == "not authenticated"
        bad = await client.get("/api/v1/servers", headers={"Authorization": "Bearer nonsense"})
        assert_problem(bad, 401, "unauthorized")
        assert bad.headers["www-authenticate"] == "Bearer"
        claims = jwt.decode(owner.access, options={"verify_signature": False})
        old = datetime.now(UTC) - timedelta(hours=2)
        claims |= {"iat": int(old.timestamp()), "exp": int((old + timedelta(minutes=15)).timestamp())}
        secret = common_settings.jwt_secret.get_secret_value()
        expired = jwt.encode(claims, secret, algorithm="HS256")
        stale = await client.get("/api/v1/servers", headers={"Authorization": f"Bearer {expired}"})
        assert_problem(stale, 401, "token-expired")

        # 403 and 404 on a server: a viewer may not change it, a stranger may not see it.
        share = await client.post(
            f"/api/v1/servers/{server_id}/shares",
            json={"email": other.email, "role": "viewer"},
            headers=owner.headers,
        )
        assert share.status_code == 201
        denied = await client.put(f"/api/v1/servers/{server_id}", json={"name": "x"}, headers=other.headers)
        assert_problem(denied, 403, "forbidden")
        stranger = await register(client)
        hidden = await client.get(f"/api/v1/servers/{server_id}", headers=stranger.headers)
        assert assert_problem(hidden, 404, "not-found")["detail"] == "server not found"

        # 409: a taken email.
        taken = await client.post(
            "/api/v1/auth/register",
            json={
                "email": owner.email,
                "username": f"u{uuid.uuid4().hex[:8]}",
                "password": "correct horse 1",
                "password_confirm": "correct horse 1",
            },
        )
        assert_problem(taken, 409, "conflict")

        # 422: `detail` a sentence (it was a list), every field at fault in `errors`.
        invalid = await client.post(
            "/api/v1/servers", json={"name": "", "port": 70000, "extra": 1}, headers=owner.headers
        )
        body = assert_problem(invalid, 422, "validation-error")
        assert body["detail"].startswith("invalid request: body.")
        assert {tuple(e["loc"]) for e in body["errors"]} == {
            ("body", "name"),
            ("body", "port"),
            ("body", "extra"),
        }
        assert all(e["msg"] and e["type"] for e in body["errors"])
        query = await client.get("/api/v1/metrics/x/history", headers=owner.headers)
        assert assert_problem(query, 422, "validation-error")["errors"][0]["loc"] == ["path", "server_id"]
        # A route's own check names its field too; a range too long is a kind of its own.
        backwards = await client.get(
            f"/api/v1/metrics/{server_id}/history",
            params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            headers=owner.headers,
        )
        assert assert_problem(backwards, 422, "validation-error")["errors"][0]["loc"] == ["query", "start"]
        too_long = await client.get(
            f"/api/v1/metrics/{server_id}/history",
            params={"start": "2000-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            headers=owner.headers,
        )
        assert_problem(too_long, 422, "range-too-large")

        # 429 with Retry-After, also as a member.
        wrong_password = {"email": owner.email, "password": "nope"}
        for _ in range(2):
            r = await client.post("/api/v1/auth/login/json", json=wrong_password)
            assert_problem(r, 401, "unauthorized")
        limited = await client.post("/api/v1/auth/login/json", json=wrong_password)
        body = assert_problem(limited, 429, "rate-limited")
        assert body["retry_after"] == int(limited.headers["retry-after"]) >= 1

        # Each problem type is a page that says what it means, served by the API (no other host).
        index = await client.get("/problems")
        assert index.status_code == 200 and all(f"/problems/{slug}" in index.text for slug in KINDS)
        for slug, kind in KINDS.items():
            page = await client.get(f"/problems/{slug}")
            assert page.status_code == 200 and kind.title in page.text and "http" not in page.text
        assert_problem(await client.get("/problems/no-such-kind"), 404, "not-found")
