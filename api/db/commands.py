"""Commands: agent presence, a server's command settings, and the command history."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from .pool import Executor


async def agent_connected(conn: Executor, server_id: uuid.UUID, stale_seconds: float) -> bool:
    """Whether an ingest process holds the server's socket and refreshed that claim recently (a
    claim older than that belongs to a process that died)."""
    found = await conn.fetchval(
        "SELECT true FROM agent_connections "
        "WHERE server_id = $1 AND seen_at > now() - make_interval(secs => $2)",
        server_id,
        stale_seconds,
    )
    return bool(found)


async def command_settings(conn: Executor, server_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT commands_enabled, command_allowlist FROM servers WHERE id = $1", server_id
    )


async def insert_command_request(
    conn: Executor,
    *,
    command_id: uuid.UUID,
    server_id: uuid.UUID,
    requested_by: uuid.UUID,
    action: str,
    command: str | None,
    container_id: str | None,
    requested_at: datetime,
) -> None:
    """The request's columns of the history row; the persistence processor fills the result's
    (either may come first, so both sides upsert on command_id)."""
    await conn.execute(
        """
        INSERT INTO command_history (command_id, server_id, requested_by, action, command, container_id,
                                     requested_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (command_id) DO UPDATE
        SET requested_by = EXCLUDED.requested_by, action = EXCLUDED.action, command = EXCLUDED.command,
            container_id = EXCLUDED.container_id, requested_at = EXCLUDED.requested_at
        """,
        command_id,
        server_id,
        requested_by,
        action,
        command,
        container_id,
        requested_at,
    )


async def record_command_result(
    conn: Executor,
    *,
    command_id: uuid.UUID,
    success: bool,
    output: str | None,
    error: str | None,
    exit_code: int | None,
    duration_ms: int | None,
    message: str | None,
    finished_at: datetime,
) -> None:
    """The result as the API received it. The persistence processor writes the same values from
    the results topic; whichever comes second changes nothing (same values, same key)."""
    await conn.execute(
        """
        UPDATE command_history
        SET success = $2, output = $3, error = $4, exit_code = $5, duration_ms = $6, message = $7,
            finished_at = $8, result_received_at = coalesce(result_received_at, now())
        WHERE command_id = $1
        """,
        command_id,
        success,
        output,
        error,
        exit_code,
        duration_ms,
        message,
        finished_at,
    )


async def command_history(
    conn: Executor, server_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, after the keyset position (requested_at, command_id), both descending."""
    return await conn.fetch(
        """
        SELECT command_id, server_id, requested_by, action, command, container_id, requested_at,
               success, exit_code, duration_ms, output, error, finished_at
        FROM command_history
        WHERE server_id = $1 AND requested_at IS NOT NULL
          AND ($2::timestamptz IS NULL OR (requested_at, command_id) < ($2, $3))
        ORDER BY requested_at DESC, command_id DESC LIMIT $4
        """,
        server_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
