"""Audit gaps (issue 14): a refused command containing NUL left no audit row ("audit row lost" in
the log), and container log reads (a GET that sends a command to the agent) were never audited.
Every attempt leaves a row, whatever the client sent and whatever the method."""

from __future__ import annotations

import psycopg
import pytest

from tests.security.conftest import Stack, new_server, register

pytestmark = pytest.mark.timeout(120)


async def _rows(stack: Stack, server_id: str) -> list[tuple[str, str, int]]:
    async with await psycopg.AsyncConnection.connect(stack.env.common.database_url, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT method, action, status FROM audit_log WHERE server_id = %s ORDER BY id", (server_id,)
            )
        ).fetchall()
    return [(str(m), str(a), int(s)) for m, a, s in rows]


async def test_a_refused_command_with_nul_is_audited(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        server_id, _ = await new_server(http, owner)
        enabled = await http.put(
            f"/api/v1/servers/{server_id}/commands",
            json={"commands_enabled": True, "command_allowlist": []},
            headers=owner.headers,
        )
        assert enabled.status_code == 200, enabled.text
        answer = await http.post(
            f"/api/v1/commands/{server_id}", json={"command": "echo hi\x00id"}, headers=owner.headers
        )
        assert answer.status_code == 422, answer.text
        # A NUL in the path too (a container id): refused, and the row still written.
        answer = await http.post(
            f"/api/v1/docker/{server_id}/containers/web%00x/restart", headers=owner.headers
        )
        assert answer.status_code == 422, answer.text
    rows = await _rows(stack, server_id)
    assert ("POST", "run_command", 422) in rows, rows
    assert [r for r in rows if r[0] == "POST" and r[2] == 422 and r[1] != "run_command"], rows
    assert "audit row lost" not in stack.server_log()


async def test_container_log_reads_are_audited(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        stranger = await register(http)
        server_id, _ = await new_server(http, owner)
        logs = f"/api/v1/docker/{server_id}/containers/web/logs"
        # Off: refused (403), audited.
        assert (await http.get(logs, headers=owner.headers)).status_code == 403
        enabled = await http.put(
            f"/api/v1/servers/{server_id}/commands",
            json={"commands_enabled": True, "command_allowlist": []},
            headers=owner.headers,
        )
        assert enabled.status_code == 200, enabled.text
        # On, no agent: the command would be sent (503 at once), audited.
        assert (await http.get(logs, headers=owner.headers)).status_code == 503
        # Someone else's server: 404, and the probe is on the record too.
        assert (await http.get(logs, headers=stranger.headers)).status_code == 404
        # A plain read (the server itself) is not a command: no row.
        assert (await http.get(f"/api/v1/servers/{server_id}", headers=owner.headers)).status_code == 200
    # Rows are written after each answer is sent (api/observe.py), so their order is not the
    # requests' order: compare what is on the record, not in which order it landed.
    reads = sorted(r for r in await _rows(stack, server_id) if r[0] == "GET")
    assert reads == [("GET", "docker_logs", 403), ("GET", "docker_logs", 404), ("GET", "docker_logs", 503)], (
        reads
    )
