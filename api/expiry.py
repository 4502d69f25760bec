"""Key expiry: a background task that finds keys past their expiry and announces each one's
revocation, so the agent's live socket is closed within seconds of the expiry (ingest also
refuses an expired key when an agent connects).

At least once: the revocation is published before the key is marked revoked, so a crash in
between announces it again on the next sweep (closing a closed socket is harmless). Several API
processes may sweep at once for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from schemas.canonical import KeyRevocation

from .db import keys as keys_db
from .db.errors import DatabaseError
from .db.pool import Pool, connection
from .errors import ApiError
from .kafka import Producer

log = logging.getLogger(__name__)


async def sweep_once(pool: Pool, producer: Producer, batch: int = 500) -> int:
    async with connection(pool) as conn:
        due = await keys_db.due_expired_api_keys(conn, batch)
    if not due:
        return 0
    now = datetime.now(UTC)
    for row in due:
        await producer.revoke_key(
            KeyRevocation(key_id=row["id"], server_id=row["server_id"], reason="expired", time=now)
        )
    async with connection(pool) as conn:
        await keys_db.mark_api_keys_expired(conn, [row["id"] for row in due])
    return len(due)


async def run(pool: Pool, producer: Producer, interval: float) -> None:
    while True:
        try:
            await sweep_once(pool, producer)
        except (ApiError, DatabaseError, OSError) as exc:
            log.warning("key expiry sweep failed, retrying in %.0f s: %s", interval, exc)
        await asyncio.sleep(interval)
