"""A server's newest top processes, as the persistence processor keeps them (`server_processes`)."""

from __future__ import annotations

import uuid

import asyncpg

from .pool import Executor


async def newest_processes(conn: Executor, server_id: uuid.UUID) -> asyncpg.Record | None:
    """(time, processes) of the newest sample that carried processes, or None."""
    return await conn.fetchrow("SELECT time, processes FROM server_processes WHERE server_id = $1", server_id)
