"""Alert rules and episodes."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from .pool import Executor


async def insert_rule(
    conn: Executor,
    rule_id: uuid.UUID,
    owner_id: uuid.UUID,
    server_id: uuid.UUID | None,
    origin: str,
    enabled: bool,
    definition: dict[str, object],
) -> None:
    await conn.execute(
        """
        INSERT INTO alert_rules (id, owner_id, server_id, origin, enabled, definition)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        rule_id,
        owner_id,
        server_id,
        origin,
        enabled,
        definition,
    )


async def update_rule(
    conn: Executor,
    rule_id: uuid.UUID,
    server_id: uuid.UUID | None,
    enabled: bool,
    definition: dict[str, object],
) -> None:
    await conn.execute(
        "UPDATE alert_rules SET server_id = $2, enabled = $3, definition = $4, updated_at = now() "
        "WHERE id = $1",
        rule_id,
        server_id,
        enabled,
        definition,
    )


async def get_rule(conn: Executor, owner_id: uuid.UUID, rule_id: uuid.UUID) -> asyncpg.Record | None:
    """The rule when `owner_id` owns it (a rule is its owner's only)."""
    return await conn.fetchrow(
        "SELECT id, owner_id, server_id, origin, definition FROM alert_rules WHERE id = $1 AND owner_id = $2",
        rule_id,
        owner_id,
    )


async def list_rules(
    conn: Executor,
    owner_id: uuid.UUID,
    origin: str | None,
    server_id: uuid.UUID | None,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The owner's rules, oldest first, after the keyset position (created_at, id)."""
    return await conn.fetch(
        """
        SELECT id, owner_id, server_id, origin, definition, created_at FROM alert_rules
        WHERE owner_id = $1 AND ($2::text IS NULL OR origin = $2) AND ($3::uuid IS NULL OR server_id = $3)
          AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5))
        ORDER BY created_at, id LIMIT $6
        """,
        owner_id,
        origin,
        server_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def delete_rule(conn: Executor, rule_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM alert_rules WHERE id = $1", rule_id)


async def owned_server_ids(conn: Executor, owner_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM servers WHERE owner_id = $1 ORDER BY id LIMIT $2", owner_id, limit
    )
    return [row["id"] for row in rows]


_ALERT_COLUMNS = """
    a.episode_id, a.rule_id, a.rule_name, a.origin, a.server_id, a.metric, a.subject, a.severity,
    a.comparison, a.threshold, a.state, a.started_at, a.fired_at, a.fired_value, a.resolved_at,
    a.resolved_value, a.message, a.acknowledged_at, a.acknowledged_by, a.resolved_by
"""


async def list_alerts(
    conn: Executor,
    user_id: uuid.UUID,
    *,
    server_id: uuid.UUID | None,
    state: str | None,
    severity: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Episodes on servers the user may see, newest first, after the keyset position `after`
    (started_at, episode_id), both descending."""
    return await conn.fetch(
        f"""
        SELECT {_ALERT_COLUMNS} FROM alerts a
        JOIN servers s ON s.id = a.server_id
        LEFT JOIN server_shares sh ON sh.server_id = s.id AND sh.user_id = $1
        WHERE (s.owner_id = $1 OR sh.user_id IS NOT NULL)
          AND ($2::uuid IS NULL OR a.server_id = $2)
          AND ($3::text IS NULL OR a.state = $3)
          AND ($4::text IS NULL OR a.severity = $4)
          AND ($5::timestamptz IS NULL OR a.started_at >= $5)
          AND ($6::timestamptz IS NULL OR a.started_at < $6)
          AND ($7::timestamptz IS NULL OR (a.started_at, a.episode_id) < ($7, $8))
        ORDER BY a.started_at DESC, a.episode_id DESC LIMIT $9
        """,
        user_id,
        server_id,
        state,
        severity,
        start,
        end,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def get_alert(conn: Executor, episode_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ALERT_COLUMNS} FROM alerts a WHERE a.episode_id = $1", episode_id)


async def acknowledge_alert(conn: Executor, episode_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute(
        """
        UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, now()),
                          acknowledged_by = coalesce(acknowledged_by, $2), updated_at = now()
        WHERE episode_id = $1
        """,
        episode_id,
        user_id,
    )


async def resolve_alert(conn: Executor, episode_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute(
        """
        UPDATE alerts SET state = 'resolved', resolved_at = coalesce(resolved_at, now()),
                          resolved_by = CASE WHEN resolved_at IS NULL THEN $2 ELSE resolved_by END,
                          updated_at = now()
        WHERE episode_id = $1
        """,
        episode_id,
        user_id,
    )
