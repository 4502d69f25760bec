"""Client address spoofing (issue 14): uvicorn believed `X-Forwarded-For` from loopback, so any
client on the machine (or behind a proxy that passes the header on) chose the address the audit
trail records and the rate limits count. Only the proxies named in FLEETPULSE_TRUSTED_PROXIES are
believed; here 127.0.0.2 is one, 127.0.0.1 is not."""

from __future__ import annotations

import psycopg
import pytest

from tests.security.conftest import Stack, new_server, register

pytestmark = pytest.mark.timeout(120)

STACK_SETTINGS = {"FLEETPULSE_TRUSTED_PROXIES": "127.0.0.2"}


async def _audited_client(stack: Stack, server_id: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(stack.env.common.database_url, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT client FROM audit_log WHERE server_id = %s AND action = 'run_command' ORDER BY id",
                (server_id,),
            )
        ).fetchall()
    return [str(client) for (client,) in rows]


async def test_a_forged_forwarded_for_is_not_believed_from_an_untrusted_peer(stack: Stack) -> None:
    async with stack.client("127.0.0.1") as http, stack.client("127.0.0.2") as proxy:
        owner = await register(http)
        server_id, _ = await new_server(http, owner)
        forged = {**owner.headers, "X-Forwarded-For": "198.51.100.7"}
        # Commands are off: refused (403), and audited with the peer's real address.
        answer = await http.post(f"/api/v1/commands/{server_id}", json={"command": "uptime"}, headers=forged)
        assert answer.status_code == 403, answer.text
        # The same header through the trusted proxy names the proxy's client.
        answer = await proxy.post(f"/api/v1/commands/{server_id}", json={"command": "uptime"}, headers=forged)
        assert answer.status_code == 403, answer.text
    assert await _audited_client(stack, server_id) == ["127.0.0.1", "198.51.100.7"]


async def test_a_lockout_is_not_escaped_by_changing_the_header(stack: Stack) -> None:
    # From 127.0.0.1, the address uvicorn's default believed the header from.
    async with stack.client("127.0.0.1") as http:
        victim = await register(http)
        statuses = []
        for attempt in range(12):
            answer = await http.post(
                "/api/v1/auth/login/json",
                json={"email": victim.email, "password": f"wrong guess {attempt}"},
                headers={"X-Forwarded-For": f"198.51.100.{attempt + 10}"},
            )
            statuses.append(answer.status_code)
        # Ten failures, then the limit holds whatever address the header claims.
        assert statuses[:10] == [401] * 10, statuses
        assert statuses[10:] == [429, 429], statuses
