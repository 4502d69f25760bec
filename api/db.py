"""Every SQL statement of the API, over an asyncpg pool that the application's lifespan owns.

Functions take a connection (or the pool) as their first argument, so a route can run several in
one transaction. Database errors are translated here, at the boundary: a unique violation becomes
`DuplicateError`, a lost connection `DatabaseUnavailable`; routes never see asyncpg's exceptions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

Role = Literal["owner", "operator", "viewer"]
ROLE_RANK: dict[Role, int] = {"viewer": 1, "operator": 2, "owner": 3}

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Executor: TypeAlias = "Conn | Pool"


class DatabaseError(Exception):
    retriable = False


class DuplicateError(DatabaseError):
    """A unique constraint refused the row (SQLSTATE 23505)."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or the connection broke."""

    retriable = True


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    # jsonb in and out as Python objects, encoded with orjson.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def open_pool(dsn: str, *, min_size: int, max_size: int, command_timeout: float) -> Pool:
    """Open the pool (called by the lifespan, which closes it)."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            init=_init_connection,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot open the database pool: {exc}") from exc
    return pool


async def close_pool(pool: Pool, *, grace_seconds: float = 10.0) -> None:
    """Close gracefully (waits for released connections), then terminate what is left."""
    try:
        await asyncio.wait_for(pool.close(), grace_seconds)
    except (TimeoutError, OSError, asyncpg.InterfaceError):
        pool.terminate()


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Conn]:
    """A pooled connection, with asyncpg's errors translated."""
    try:
        async with pool.acquire() as conn:
            yield conn
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateError(exc.detail or str(exc)) from exc
    except (OSError, asyncpg.ConnectionDoesNotExistError, asyncpg.CannotConnectNowError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    except asyncpg.InterfaceError as exc:
        if "pool is closing" in str(exc) or "connection is closed" in str(exc):
            raise DatabaseUnavailable(str(exc)) from exc
        raise


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Conn]:
    async with connection(pool) as conn, conn.transaction():
        yield conn


async def ping(pool: Pool) -> None:
    async with connection(pool) as conn:
        await conn.fetchval("SELECT 1")


# --- sharing and roles ----------------------------------------------------------------------------


async def server_role(conn: Executor, user_id: uuid.UUID, server_id: uuid.UUID) -> Role | None:
    """The user's role on the server, or None when they may not see it at all.

    The owner (`servers.owner_id`) and co-owners (a share with role 'owner') are "owner"; other
    shares give "operator" or "viewer". Callers answer 404, never 403, when this is None, so a
    stranger cannot even learn that the server exists.
    """
    role = await conn.fetchval(
        """
        SELECT CASE WHEN s.owner_id = $1 THEN 'owner' ELSE sh.role END
        FROM servers s
        LEFT JOIN server_shares sh ON sh.server_id = s.id AND sh.user_id = $1
        WHERE s.id = $2 AND (s.owner_id = $1 OR sh.user_id IS NOT NULL)
        """,
        user_id,
        server_id,
    )
    if role in ("owner", "operator", "viewer"):
        return role  # type: ignore[no-any-return]
    return None


def has_role(role: Role | None, needed: Role) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]


# --- users -------------------------------------------------------------------------------------

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
