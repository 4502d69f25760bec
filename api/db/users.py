"""Users and their refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from .pool import Conn, Executor

_USER_COLUMNS = "id, email, username, full_name, is_active, created_at, password_hash"


async def get_user(conn: Executor, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)


async def get_user_by_email(conn: Executor, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = lower($1)", email)


async def insert_user(
    conn: Executor, user_id: uuid.UUID, email: str, username: str, full_name: str | None, password_hash: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO users (id, email, username, full_name, password_hash)
        VALUES ($1, $2, $3, $4, $5)
        RETURNING {_USER_COLUMNS}
        """,
        user_id,
        email,
        username,
        full_name,
        password_hash,
    )
    assert row is not None
    return row


async def set_password(conn: Executor, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", user_id, password_hash
    )


# --- refresh tokens ------------------------------------------------------------------------------


async def insert_refresh_token(
    conn: Executor,
    token_id: uuid.UUID,
    family_id: uuid.UUID,
    user_id: uuid.UUID,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO refresh_tokens (id, family_id, user_id, issued_at, expires_at)
        VALUES ($1, $2, $3, $4, $5)
        """,
        token_id,
        family_id,
        user_id,
        issued_at,
        expires_at,
    )


async def lock_refresh_token(conn: Conn, token_id: uuid.UUID) -> asyncpg.Record | None:
    """The token's row, locked until the transaction ends (two concurrent uses: one waits)."""
    return await conn.fetchrow(
        "SELECT id, family_id, user_id, used_at, revoked_at, expires_at FROM refresh_tokens "
        "WHERE id = $1 FOR UPDATE",
        token_id,
    )


async def mark_refresh_used(conn: Conn, token_id: uuid.UUID) -> None:
    await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", token_id)


async def revoke_refresh_family(conn: Executor, family_id: uuid.UUID) -> int:
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family_id
    )
    return int(status.split()[-1])


async def revoke_user_refresh_tokens(conn: Executor, user_id: uuid.UUID) -> int:
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return int(status.split()[-1])
