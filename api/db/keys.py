"""The agents' API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from .pool import Executor

_KEY_COLUMNS = "id, server_id, name, is_active, last_used, expires_at, created_at, revoked_at"


async def insert_api_key(
    conn: Executor,
    key_id: uuid.UUID,
    server_id: uuid.UUID,
    lookup_id: str,
    secret_hash: bytes,
    name: str | None,
    expires_at: datetime | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO api_keys (id, server_id, lookup_id, secret_hash, name, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_KEY_COLUMNS}
        """,
        key_id,
        server_id,
        lookup_id,
        secret_hash,
        name,
        expires_at,
    )
    assert row is not None
    return row


async def get_api_key(conn: Executor, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)


async def get_api_key_by_lookup(conn: Executor, lookup_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_KEY_COLUMNS}, secret_hash FROM api_keys WHERE lookup_id = $1", lookup_id
    )


async def list_api_keys(
    conn: Executor, server_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """The server's keys, oldest first, after the keyset position (created_at, id)."""
    return await conn.fetch(
        f"""SELECT {_KEY_COLUMNS} FROM api_keys
            WHERE server_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
            ORDER BY created_at, id LIMIT $4""",
        server_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def deactivate_api_key(conn: Executor, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        UPDATE api_keys SET is_active = false, revoked_at = coalesce(revoked_at, now())
        WHERE id = $1 RETURNING {_KEY_COLUMNS}
        """,
        key_id,
    )


async def delete_api_key(conn: Executor, key_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM api_keys WHERE id = $1", key_id)


async def due_expired_api_keys(conn: Executor, limit: int) -> list[asyncpg.Record]:
    """Keys past their expiry that are not marked revoked yet (their revocation is not announced)."""
    return await conn.fetch(
        """
        SELECT id, server_id FROM api_keys
        WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= now()
        ORDER BY expires_at LIMIT $1
        """,
        limit,
    )


async def mark_api_keys_expired(conn: Executor, key_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        "UPDATE api_keys SET is_active = false, revoked_at = coalesce(revoked_at, now()) WHERE id = ANY($1)",
        key_ids,
    )
