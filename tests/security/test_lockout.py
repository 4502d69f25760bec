"""Lockout of the innocent (issue 14): after ten bad agent logins from one address, a valid key
from the same address was refused for 60 s; the key pre-flight `GET /api/v1/api-keys/me` was not
rate limited at all in one-process mode; logins were limited per (email, address) only, so an
account could be guessed from many addresses. Now failures are limited by key or account and by
address separately: an attacker cannot lock a legitimate agent or user out, and still meets a
limit wherever it comes from."""

from __future__ import annotations

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.security.conftest import PASSWORD, Stack, new_server, recv, register

pytestmark = pytest.mark.timeout(180)

STACK_SETTINGS = {
    "FLEETPULSE_INGEST_AUTH_FAIL_LIMIT": "10",
    "FLEETPULSE_API_KEY_CHECK_FAILURES": "5",
    "FLEETPULSE_API_LOGIN_FAILURES_PER_ACCOUNT": "15",
}
BAD_KEY = "fpk_AAAAAAAAAAAA_" + "A" * 43


async def _agent_auth(stack: Stack, key: str, address: str) -> dict[str, object]:
    async with connect(stack.agent_url, local_addr=(address, 0), open_timeout=20) as ws:
        await ws.send(orjson.dumps({"type": "auth", "api_key": key}).decode())
        return await recv(ws)


async def test_bad_agent_logins_do_not_lock_out_a_valid_key_from_the_same_address(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        _, key = await new_server(http, owner)
    address = "127.0.0.21"
    for _ in range(10):
        assert (await _agent_auth(stack, BAD_KEY, address))["message"] == "Invalid or inactive API key"
    # The attacker's address is now limited ...
    assert (await _agent_auth(stack, BAD_KEY, address)).get("code") == "rate_limited"
    # ... and the agent behind the same address still gets in.
    assert (await _agent_auth(stack, key, address))["type"] == "auth_success"


async def test_the_key_preflight_is_rate_limited_in_one_process_mode(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        server_id, key = await new_server(http, owner)
    async with stack.client("127.0.0.22") as http:
        statuses = [
            (await http.get("/api/v1/api-keys/me", headers={"X-API-Key": BAD_KEY})).status_code
            for _ in range(7)
        ]
        assert statuses == [401] * 5 + [429] * 2, statuses
        # A valid key from the limited address is still answered.
        me = await http.get("/api/v1/api-keys/me", headers={"X-API-Key": key})
        assert me.status_code == 200, me.text
        assert me.json()["server_id"] == server_id


async def test_login_guesses_from_one_address_do_not_lock_the_user_out_elsewhere(stack: Stack) -> None:
    async with stack.client("127.0.0.23") as attacker, stack.client("127.0.0.24") as home:
        victim = await register(home)
        bystander = await register(home)
        statuses = []
        for n in range(11):
            answer = await attacker.post(
                "/api/v1/auth/login/json", json={"email": victim.email, "password": f"guess {n}"}
            )
            statuses.append(answer.status_code)
        assert statuses == [401] * 10 + [429], statuses
        # The victim, from their own address, logs in; so does another user from the attacker's.
        ok = await home.post("/api/v1/auth/login/json", json={"email": victim.email, "password": PASSWORD})
        assert ok.status_code == 200, ok.text
        ok = await attacker.post(
            "/api/v1/auth/login/json", json={"email": bystander.email, "password": PASSWORD}
        )
        assert ok.status_code == 200, ok.text


async def test_guessing_one_account_from_many_addresses_meets_the_account_limit(stack: Stack) -> None:
    async with stack.client("127.0.0.25") as home:
        victim = await register(home)
    for n in range(15):
        async with stack.client(f"127.0.1.{n + 1}") as http:
            answer = await http.post(
                "/api/v1/auth/login/json", json={"email": victim.email, "password": f"guess {n}"}
            )
            assert answer.status_code == 401, answer.text
    # Past the account's limit even the right password is refused (decided before the check, so a
    # guesser learns nothing), from any address, until the window passes.
    async with stack.client("127.0.1.99") as http:
        answer = await http.post(
            "/api/v1/auth/login/json", json={"email": victim.email, "password": PASSWORD}
        )
        assert answer.status_code == 429, answer.text
        assert "retry-after" in answer.headers
