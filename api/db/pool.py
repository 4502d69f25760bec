"""The asyncpg pool the application's lifespan owns, and connections from it.

Database errors are translated here, at the boundary: a unique violation becomes `DuplicateError`,
a refused value `InvalidData`, a lost connection `DatabaseUnavailable` (all in `errors.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from .errors import DatabaseUnavailable, DuplicateError, InvalidData

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Executor: TypeAlias = "Conn | Pool"
Record: TypeAlias = asyncpg.Record


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
    except asyncpg.DataError as exc:
        raise InvalidData(str(exc)) from exc
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
