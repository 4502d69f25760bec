"""The audit log."""

from __future__ import annotations

import uuid

import asyncpg

from .pool import Executor


async def insert_audit(
    conn: Executor,
    *,
    user_id: uuid.UUID | None,
    server_id: uuid.UUID | None,
    method: str,
    path: str,
    action: str,
    status: int,
    client: str | None,
    detail: dict[str, object],
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (user_id, server_id, method, path, action, status, client, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        user_id,
        server_id,
        method,
        path,
        action,
        status,
        client,
        detail,
    )


async def list_audit(
    conn: Executor,
    *,
    server_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first, after the keyset position: rows with an id below `before_id` (the last id
    of the previous page)."""
    return await conn.fetch(
        """
        SELECT id, time, user_id, server_id, method, path, action, status, client, detail
        FROM audit_log
        WHERE ($1::uuid IS NULL OR server_id = $1) AND ($2::uuid IS NULL OR user_id = $2)
          AND ($3::bigint IS NULL OR id < $3)
        ORDER BY id DESC LIMIT $4
        """,
        server_id,
        user_id,
        before_id,
        limit,
    )
