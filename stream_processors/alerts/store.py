"""The alert engine's SQL (psycopg 3): owners of servers, episodes, channels, the delivery log.

Every write is idempotent: episodes on `episode_id`, deliveries on `(channel_id, event_id)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from schemas.alerts import AlertEvent, NotificationChannel

Conn = AsyncConnection[TupleRow]
T = TypeVar("T")
Op = Callable[[Conn], Awaitable[T]]


async def owner_of(conn: Conn, server_id: uuid.UUID) -> uuid.UUID | None:
    cur = await conn.execute("SELECT owner_id FROM servers WHERE id = %s", (server_id,))
    row = await cur.fetchone()
    return None if row is None else row[0]


async def owners_of(conn: Conn, server_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """server id -> owner id of those of these servers that exist."""
    cur = await conn.execute("SELECT id, owner_id FROM servers WHERE id = ANY(%s)", (list(server_ids),))
    return {row[0]: row[1] for row in await cur.fetchall()}


async def servers_of(conn: Conn, owner_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(server_id, owner_id) of every server of these owners."""
    if not owner_ids:
        return []
    cur = await conn.execute("SELECT id, owner_id FROM servers WHERE owner_id = ANY(%s)", (list(owner_ids),))
    return [(row[0], row[1]) for row in await cur.fetchall()]


_UPSERT_EPISODE = """
INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id, metric, subject,
                    severity, comparison, threshold, state, started_at, fired_at, fired_value,
                    resolved_at, resolved_value, message)
VALUES (%(episode_id)s, %(rule_id)s, %(rule_name)s, %(origin)s, %(owner_id)s, %(server_id)s,
        %(metric)s, %(subject)s, %(severity)s, %(comparison)s, %(threshold)s, %(state)s,
        %(started_at)s, %(fired_at)s, %(fired_value)s, %(resolved_at)s, %(resolved_value)s,
        %(message)s)
ON CONFLICT (episode_id) DO UPDATE SET
    -- Order-independent merge: a replayed or reordered event never undoes a resolution.
    state          = CASE WHEN alerts.resolved_at IS NOT NULL OR EXCLUDED.resolved_at IS NOT NULL
                          THEN 'resolved' ELSE 'firing' END,
    fired_at       = COALESCE(alerts.fired_at, EXCLUDED.fired_at),
    fired_value    = COALESCE(alerts.fired_value, EXCLUDED.fired_value),
    resolved_at    = COALESCE(alerts.resolved_at, EXCLUDED.resolved_at),
    resolved_value = COALESCE(alerts.resolved_value, EXCLUDED.resolved_value),
    message        = CASE WHEN EXCLUDED.resolved_at IS NOT NULL THEN EXCLUDED.message ELSE alerts.message END,
    updated_at     = now()
"""


def _episode_params(event: AlertEvent) -> dict[str, object]:
    firing = event.state == "firing"
    return {
        "episode_id": event.episode_id,
        "rule_id": event.rule_id,
        "rule_name": event.rule_name,
        "origin": event.origin,
        "owner_id": event.owner_id,
        "server_id": event.server_id,
        "metric": event.metric,
        "subject": event.subject,
        "severity": event.severity,
        "comparison": event.comparison,
        "threshold": event.threshold,
        "state": event.state,
        "started_at": event.started_at,
        "fired_at": event.time if firing else None,
        "fired_value": event.value if firing else None,
        "resolved_at": None if firing else event.time,
        "resolved_value": None if firing else event.value,
        "message": event.message,
    }


async def upsert_episodes(conn: Conn, events: Sequence[AlertEvent]) -> None:
    """Record state changes in the alerts table, in one transaction."""
    if not events:
        return
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(_UPSERT_EPISODE, [_episode_params(e) for e in events])


async def channels_for(conn: Conn, event: AlertEvent) -> list[NotificationChannel]:
    """The enabled channels of the server's owner that match the event's server and rule."""
    cur = await conn.execute(
        """SELECT c.id, c.owner_id, c.name, c.kind, c.url, c.secret, c.server_id, c.rule_id, c.enabled
             FROM notification_channels c
             JOIN servers s ON s.owner_id = c.owner_id
            WHERE s.id = %s AND c.enabled
              AND (c.server_id IS NULL OR c.server_id = s.id)
              AND (c.rule_id IS NULL OR c.rule_id = %s)
            ORDER BY c.id""",
        (event.server_id, event.rule_id),
    )
    names = ("id", "owner_id", "name", "kind", "url", "secret", "server_id", "rule_id", "enabled")
    return [
        NotificationChannel.model_validate(dict(zip(names, row, strict=True))) for row in await cur.fetchall()
    ]


async def claim_delivery(conn: Conn, channel_id: uuid.UUID, event: AlertEvent) -> bool:
    """Record the delivery (once) and say whether it still has to be sent (not delivered yet)."""
    cur = await conn.execute(
        """INSERT INTO notification_deliveries (channel_id, event_id, episode_id, state, server_id)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (channel_id, event_id) DO UPDATE SET updated_at = now()
           RETURNING status""",
        (channel_id, event.event_id, event.episode_id, event.state, event.server_id),
    )
    row = await cur.fetchone()
    return row is not None and row[0] != "delivered"


async def record_attempt(
    conn: Conn,
    channel_id: uuid.UUID,
    event_id: uuid.UUID,
    *,
    delivered: bool,
    final: bool,
    status_code: int | None,
    error: str | None,
    at: datetime,
) -> None:
    status = "delivered" if delivered else ("failed" if final else "pending")
    await conn.execute(
        """UPDATE notification_deliveries
              SET attempts = attempts + 1, status = %s, last_status_code = %s, last_error = %s,
                  delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END, updated_at = now()
            WHERE channel_id = %s AND event_id = %s""",
        (status, status_code, error, delivered, at, channel_id, event_id),
    )
