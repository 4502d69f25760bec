"""Accounts (issue 14): `12345678` and `password` were accepted as passwords, and password changes
were not rate limited. New passwords are checked against a list of common ones (NIST 800-63B
5.1.1.2), and changes are limited per user before the current password is checked."""

from __future__ import annotations

import uuid

import pytest

from tests.security.conftest import PASSWORD, Stack, register

pytestmark = pytest.mark.timeout(120)

STACK_SETTINGS = {"FLEETPULSE_API_PASSWORD_CHANGES": "3"}


@pytest.mark.parametrize("password", ["12345678", "password", "Password1", "qwertyuiop", "iloveyou"])
async def test_common_passwords_are_refused_at_registration(stack: Stack, password: str) -> None:
    name = f"u{uuid.uuid4().hex[:12]}"
    async with stack.client() as http:
        answer = await http.post(
            "/api/v1/auth/register",
            json={
                "email": f"{name}@example.com",
                "username": name,
                "password": password,
                "password_confirm": password,
            },
        )
    assert answer.status_code == 422, answer.text
    assert "common" in answer.text


async def test_common_passwords_are_refused_on_change_and_changes_are_rate_limited(stack: Stack) -> None:
    async with stack.client() as http:
        user = await register(http)
        answer = await http.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "12345678"},
            headers=user.headers,
        )
        assert answer.status_code == 422, answer.text
        statuses = []
        for n in range(3):
            answer = await http.post(
                "/api/v1/auth/password",
                json={"current_password": f"guess {n}", "new_password": "another sturdy phrase"},
                headers=user.headers,
            )
            statuses.append(answer.status_code)
        assert statuses == [401, 401, 401], statuses
        # Past the limit even the right current password is refused: a stolen access token
        # cannot be used to guess it.
        answer = await http.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "another sturdy phrase"},
            headers=user.headers,
        )
        assert answer.status_code == 429, answer.text
