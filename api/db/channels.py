"""Notification channels: an owner's webhook and Slack targets for alert notifications.

Every query is scoped by `owner_id`: a channel is reached only through its owner, so another
user's id finds nothing (the route answers 404). The secret is read only by `get_secret`, for the
test send; no listing returns it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from .pool import Executor

_COLUMNS = (
    "id, owner_id, name, kind, url, server_id, rule_id, enabled, created_at, updated_at, "
    "secret IS NOT NULL AS has_secret"
)


async def insert_channel(
    conn: Executor,
    channel_id: uuid.UUID,
    owner_id: uuid.UUID,
    *,
    name: str,
    kind: str,
    url: str,
    secret: str | None,
    server_id: uuid.UUID | None,
    rule_id: uuid.UUID | None,
    enabled: bool,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO notification_channels
                (id, owner_id, name, kind, url, secret, server_id, rule_id, enabled)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            RETURNING {_COLUMNS}""",
        channel_id,
        owner_id,
        name,
        kind,
        url,
        secret,
        server_id,
        rule_id,
        enabled,
    )
    assert row is not None
    return row


async def count_channels(conn: Executor, owner_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM notification_channels WHERE owner_id = $1", owner_id
    )
    return count


async def list_channels(
    conn: Executor, owner_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """The owner's channels, oldest first, after the keyset position `after` (created_at, id)."""
    return await conn.fetch(
        f"""SELECT {_COLUMNS} FROM notification_channels
            WHERE owner_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
            ORDER BY created_at, id LIMIT $4""",
        owner_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def get_channel(conn: Executor, owner_id: uuid.UUID, channel_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM notification_channels WHERE id = $1 AND owner_id = $2", channel_id, owner_id
    )


async def get_secret(conn: Executor, owner_id: uuid.UUID, channel_id: uuid.UUID) -> str | None:
    secret: str | None = await conn.fetchval(
        "SELECT secret FROM notification_channels WHERE id = $1 AND owner_id = $2", channel_id, owner_id
    )
    return secret


_UPDATABLE = frozenset({"name", "kind", "url", "secret", "server_id", "rule_id", "enabled"})


async def update_channel(
    conn: Executor, owner_id: uuid.UUID, channel_id: uuid.UUID, fields: dict[str, object]
) -> asyncpg.Record | None:
    """Apply `fields` (column names from this module's own list, never from the request)."""
    assignments = []
    values: list[object] = [channel_id, owner_id]
    for name, value in fields.items():
        if name not in _UPDATABLE:
            raise ValueError(f"not an updatable column: {name}")
        values.append(value)
        assignments.append(f"{name} = ${len(values)}")
    assignments.append("updated_at = now()")
    return await conn.fetchrow(
        f"""UPDATE notification_channels SET {", ".join(assignments)}
            WHERE id = $1 AND owner_id = $2 RETURNING {_COLUMNS}""",
        *values,
    )


async def delete_channel(conn: Executor, owner_id: uuid.UUID, channel_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "DELETE FROM notification_channels WHERE id = $1 AND owner_id = $2", channel_id, owner_id
    )
    return status.endswith(" 1")


async def rule_owner(conn: Executor, rule_id: uuid.UUID) -> uuid.UUID | None:
    owner: uuid.UUID | None = await conn.fetchval("SELECT owner_id FROM alert_rules WHERE id = $1", rule_id)
    return owner
