"""Servers, their shares, and a user's role on one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg

from .pool import Executor

# --- roles ----------------------------------------------------------------------------------------


Role = Literal["owner", "operator", "viewer"]
ROLE_RANK: dict[Role, int] = {"viewer": 1, "operator": 2, "owner": 3}


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


# --- servers -------------------------------------------------------------------------------------

_SERVER_COLUMNS = (
    "s.id, s.owner_id, s.name, s.host, s.port, s.metadata, s.tags, s.status, s.last_seen, s.created_at, "
    "s.updated_at, s.commands_enabled, s.command_allowlist"
)


async def insert_server(
    conn: Executor,
    server_id: uuid.UUID,
    owner_id: uuid.UUID,
    name: str,
    host: str | None,
    port: int | None,
    metadata: dict[str, object],
    tags: list[str],
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO servers AS s (id, owner_id, name, host, port, metadata, tags)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING {_SERVER_COLUMNS}, 'owner' AS role
        """,
        server_id,
        owner_id,
        name,
        host,
        port,
        metadata,
        tags,
    )
    assert row is not None
    return row


_SERVER_WITH_ROLE = f"""
    SELECT {_SERVER_COLUMNS}, CASE WHEN s.owner_id = $1 THEN 'owner' ELSE sh.role END AS role
    FROM servers s
    LEFT JOIN server_shares sh ON sh.server_id = s.id AND sh.user_id = $1
    WHERE (s.owner_id = $1 OR sh.user_id IS NOT NULL)
"""


async def list_servers(
    conn: Executor,
    user_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    tags: list[str] | None = None,
) -> list[asyncpg.Record]:
    """Visible servers, oldest first, after the keyset position `after` (created_at, id); with
    `tags`, only those carrying every one of them."""
    return await conn.fetch(
        _SERVER_WITH_ROLE
        + """ AND ($3::text[] IS NULL OR s.tags @> $3::text[])
              AND ($4::timestamptz IS NULL OR (s.created_at, s.id) > ($4, $5))
            ORDER BY s.created_at, s.id LIMIT $2""",
        user_id,
        limit,
        tags or None,
        after[0] if after else None,
        after[1] if after else None,
    )


async def get_server(conn: Executor, user_id: uuid.UUID, server_id: uuid.UUID) -> asyncpg.Record | None:
    """The server with the caller's role, or None when the caller may not see it."""
    return await conn.fetchrow(_SERVER_WITH_ROLE + " AND s.id = $2", user_id, server_id)


async def update_server(conn: Executor, server_id: uuid.UUID, fields: dict[str, object]) -> None:
    allowed = {"name", "host", "port", "metadata", "tags", "commands_enabled", "command_allowlist"}
    assignments = []
    values: list[object] = [server_id]
    for name, value in fields.items():
        if name not in allowed:  # column names never come from the request
            raise ValueError(f"not an updatable column: {name}")
        values.append(value)
        assignments.append(f"{name} = ${len(values)}")
    if not assignments:
        return
    await conn.execute(
        f"UPDATE servers SET {', '.join(assignments)}, updated_at = now() WHERE id = $1", *values
    )


async def server_owner_id(conn: Executor, server_id: uuid.UUID) -> uuid.UUID | None:
    owner: uuid.UUID | None = await conn.fetchval("SELECT owner_id FROM servers WHERE id = $1", server_id)
    return owner


async def delete_server(conn: Executor, server_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM servers WHERE id = $1", server_id)


async def server_keys_ids(conn: Executor, server_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM api_keys WHERE server_id = $1 AND is_active AND revoked_at IS NULL", server_id
    )
    return [row["id"] for row in rows]


# --- sharing -------------------------------------------------------------------------------------


async def upsert_share(
    conn: Executor, server_id: uuid.UUID, user_id: uuid.UUID, role: str, granted_by: uuid.UUID
) -> None:
    await conn.execute(
        """
        INSERT INTO server_shares (server_id, user_id, role, granted_by) VALUES ($1, $2, $3, $4)
        ON CONFLICT (server_id, user_id) DO UPDATE SET role = EXCLUDED.role, granted_by = EXCLUDED.granted_by
        """,
        server_id,
        user_id,
        role,
        granted_by,
    )


async def list_shares(
    conn: Executor,
    server_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """The server's shares, oldest first, after the keyset position (created_at, user_id)."""
    return await conn.fetch(
        """
        SELECT sh.server_id, sh.user_id, u.email, u.username, sh.role, sh.created_at
        FROM server_shares sh JOIN users u ON u.id = sh.user_id
        WHERE sh.server_id = $1 AND ($2::timestamptz IS NULL OR (sh.created_at, sh.user_id) > ($2, $3))
        ORDER BY sh.created_at, sh.user_id LIMIT $4
        """,
        server_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def delete_share(conn: Executor, server_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "DELETE FROM server_shares WHERE server_id = $1 AND user_id = $2", server_id, user_id
    )
    return status.endswith(" 1")
