"""Remote commands chained past the allowlist (issue 14): with `echo .*` allowed, `echo hi; id -un`
ran `id` on a ChatOps agent, which runs commands through `sh -c`. Against the real stack and a
real `sh -c` agent: every shell construct is refused before anything is published, a quoted one is
sent in a form `sh -c` reads as plain words, and each attempt is audited."""

from __future__ import annotations

import getpass

import psycopg
import pytest

from tests.security.conftest import Stack, chatops_agent, new_server, register

pytestmark = pytest.mark.timeout(180)

CHAINS = [
    "echo hi; id -un",
    "echo hi && id -un",
    "echo hi || id -un",
    "echo hi | id -un",
    "echo $(id -un)",
    "echo `id -un`",
    'echo "$(id -un)"',
    "echo hi > /tmp/fleetpulse-attack",
    "echo hi\nid -un",
    "echo ${USER}",
    "echo ~",
    "echo *",
]


async def test_shell_chains_past_the_allowlist_are_refused_and_never_run(stack: Stack) -> None:
    me = getpass.getuser()
    async with stack.client() as http:
        owner = await register(http)
        server_id, key = await new_server(http, owner)
        answer = await http.put(
            f"/api/v1/servers/{server_id}/commands",
            json={"commands_enabled": True, "command_allowlist": [r"echo .*"]},
            headers=owner.headers,
        )
        assert answer.status_code == 200, answer.text
        async with chatops_agent(stack, key) as ran:
            plain = await http.post(
                f"/api/v1/commands/{server_id}", json={"command": "echo hello world"}, headers=owner.headers
            )
            assert plain.status_code == 200, plain.text
            assert plain.json()["output"] == "hello world\n"

            for attack in CHAINS:
                answer = await http.post(
                    f"/api/v1/commands/{server_id}", json={"command": attack}, headers=owner.headers
                )
                assert answer.status_code in (403, 422), (attack, answer.status_code, answer.text)
                assert me not in answer.text, attack

            # Quoted, the same characters are one argument: `sh -c` prints them and runs nothing.
            quoted = await http.post(
                f"/api/v1/commands/{server_id}",
                json={"command": "echo 'hi; id -un' \"$HOME\"x"},
                headers=owner.headers,
            )
            if quoted.status_code == 200:
                pytest.fail(f"a double-quoted $ reached the agent: {quoted.text}")
            quoted = await http.post(
                f"/api/v1/commands/{server_id}",
                json={"command": "echo 'hi; id -un' '$(id -un)'"},
                headers=owner.headers,
            )
            assert quoted.status_code == 200, quoted.text
            assert quoted.json()["output"] == "hi; id -un $(id -un)\n"
        # The agent only ever received the two harmless commands, in their canonical text.
        assert ran == ["echo hello world", "echo 'hi; id -un' '$(id -un)'"]

    async with await psycopg.AsyncConnection.connect(stack.env.common.database_url, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT status, detail->>'command' FROM audit_log"
                " WHERE server_id = %s AND action = 'run_command'",
                (server_id,),
            )
        ).fetchall()
    statuses = sorted(status for status, _ in rows)
    assert len(rows) == len(CHAINS) + 3, rows  # every attempt audited, refused or not
    assert statuses.count(200) == 2
