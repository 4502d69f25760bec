"""Accounts over HTTP on the real database: register, login (form and JSON), me, refresh with
rotation and reuse detection, logout, password change, login rate limit, audit rows."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from schemas import tokens
from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, register, running_api


@pytest.fixture
async def client(common_settings: CommonSettings):
    async with running_api(api_settings(common_settings, login_attempts=3, login_window_seconds=600)) as (
        _,
        c,
    ):
        yield c


async def test_account_flow_with_refresh_rotation_and_reuse_detection(
    client: httpx.AsyncClient, db: psycopg.AsyncConnection, common_settings: CommonSettings
) -> None:
    user = await register(client)

    # The password is stored as an argon2id hash, never as given.
    row = await (await db.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,))).fetchone()
    assert row is not None and row[0].startswith("$argon2id$") and user.password not in row[0]

    # Login with the OAuth2 form (email in `username`) and with JSON.
    form = await client.post("/api/v1/auth/login", data={"username": user.email, "password": user.password})
    assert form.status_code == 200, form.text
    assert form.json()["token_type"] == "bearer" and form.json()["user"]["email"] == user.email
    as_json = await client.post(
        "/api/v1/auth/login/json", json={"email": user.email, "password": user.password}
    )
    assert as_json.status_code == 200
    wrong = await client.post("/api/v1/auth/login", data={"username": user.email, "password": "nope-nope"})
    assert wrong.status_code == 401

    # The access token carries every required claim, and works.
    claims = tokens.decode(common_settings.jwt_secret.get_secret_value(), user.access, "access")
    assert claims.subject == user.id
    me = await client.get("/api/v1/auth/me", headers=user.headers)
    assert me.status_code == 200 and me.json()["id"] == str(user.id)
    # A refresh token is not an access token.
    refused = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {user.refresh}"})
    assert refused.status_code == 401

    # Refresh rotates: a new pair, and the old refresh token is used up.
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert first.status_code == 200, first.text
    second_refresh = first.json()["refresh_token"]
    assert second_refresh != user.refresh
    # Reusing the old token is detected: the whole family is revoked, the new token too.
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert reuse.status_code == 401 and "reuse" in reuse.json()["detail"]
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": second_refresh})
    assert after.status_code == 401
    # Other sessions (other families, from the logins above) are untouched.
    other = await client.post("/api/v1/auth/refresh", json={"refresh_token": form.json()["refresh_token"]})
    assert other.status_code == 200

    # Logout revokes the session's refresh token.
    session = other.json()
    out = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers={"Authorization": f"Bearer {session['access_token']}"},
    )
    assert out.status_code == 204
    gone = await client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert gone.status_code == 401

    # Password change: the old password stops working, the new one works, sessions end.
    json_session = as_json.json()
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": user.password, "new_password": "a much better one"},
        headers=user.headers,
    )
    assert changed.status_code == 204
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": json_session["refresh_token"]})
    ).status_code == 401
    assert (
        await client.post(
            "/api/v1/auth/login/json", json={"email": user.email, "password": "a much better one"}
        )
    ).status_code == 200

    # Audit rows for the state changes (the failed login included), with who and the result.
    rows = await (
        await db.execute(
            "SELECT action, status, user_id FROM audit_log "
            "WHERE path LIKE '/api/v1/auth/%%' AND (user_id = %s OR detail->>'email' = %s) ORDER BY id",
            (user.id, user.email),
        )
    ).fetchall()
    actions = [(r[0], r[1]) for r in rows]
    assert actions[0] == ("register", 201)
    assert ("login", 401) in actions and ("login", 200) in actions and ("login_json", 200) in actions
    assert ("logout", 204) in actions and ("change_password", 204) in actions
    assert all(r[2] == user.id for r in rows if r[1] < 300)
    assert all(r[2] is None for r in rows if r[0] == "login" and r[1] == 401)  # nobody proved who they are


async def test_register_validation_and_duplicates(client: httpx.AsyncClient) -> None:
    user = await register(client)
    dup = await client.post(
        "/api/v1/auth/register",
        json={
            "email": user.email,
            "username": "someone-else",
            "password": "x" * 10,
            "password_confirm": "x" * 10,
        },
    )
    assert dup.status_code == 409
    short = await client.post(
        "/api/v1/auth/register",
        json={"email": "a@example.com", "username": "aa", "password": "short", "password_confirm": "short"},
    )
    assert short.status_code == 422
    mismatch = await client.post(
        "/api/v1/auth/register",
        json={"email": "b@example.com", "username": "bb", "password": "x" * 10, "password_confirm": "y" * 10},
    )
    assert mismatch.status_code == 422


async def test_login_attempts_are_rate_limited(client: httpx.AsyncClient) -> None:
    user = await register(client)
    for _ in range(3):  # the limit set in the fixture
        r = await client.post("/api/v1/auth/login", data={"username": user.email, "password": "wrong-wrong"})
        assert r.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": user.password}
    )
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    # Another account from the same address is not affected.
    other = await register(client)
    ok = await client.post("/api/v1/auth/login", data={"username": other.email, "password": other.password})
    assert ok.status_code == 200


async def test_tampered_and_foreign_tokens_are_refused(client: httpx.AsyncClient) -> None:
    user = await register(client)
    forged, _ = tokens.encode(
        "another-secret-" * 4, user.id, "access", __import__("datetime").timedelta(minutes=5)
    )
    assert (
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer x.y.z"})).status_code == 401
