"""Ingest's SQL: API-key verification and the `agent_connections` presence table.

The asyncpg pool is opened and closed by the app's lifespan; no connection is held for a socket's
lifetime (each call borrows one for a single statement). asyncpg and OS errors are translated
into `DatabaseUnavailable` here, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from schemas import apikeys

from .errors import DatabaseUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    key_id: uuid.UUID
    server_id: uuid.UUID
    name: str | None


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The outcome of verifying a presented key: `identity` is None when it is refused."""

    identity: KeyIdentity | None
    reason: str  # "ok", "malformed", "unknown", "mismatch", "inactive", "revoked", "expired"
    server_id: uuid.UUID | None = None  # the key's server when the key exists (for auth events)


_KEY_SQL = """
SELECT id, server_id, secret_hash, name, is_active, revoked_at, expires_at, now() AS now
FROM api_keys WHERE lookup_id = $1
"""

_CLAIM_SERVER_SQL = """
INSERT INTO agent_connections (server_id, ingest_id, connection_id, key_id, remote, since, seen_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (server_id) DO UPDATE SET
    ingest_id = EXCLUDED.ingest_id, connection_id = EXCLUDED.connection_id, key_id = EXCLUDED.key_id,
    remote = EXCLUDED.remote, since = EXCLUDED.since, seen_at = now()
"""

# Refresh this process's rows and return them: a row that now names another connection was taken
# over by a newer socket (possibly on another process), and the local one must close.
_PRESENCE_SQL = """
UPDATE agent_connections SET seen_at = now()
WHERE ingest_id = $1 AND connection_id = ANY($2::uuid[])
RETURNING connection_id
"""

_RELEASE_SQL = "DELETE FROM agent_connections WHERE server_id = $1 AND connection_id = $2"

_HOLDER_SQL = """
SELECT ingest_id FROM agent_connections
WHERE server_id = $1 AND seen_at > now() - make_interval(secs => $2)
"""

_CLAIM_COMMAND_SQL = """
INSERT INTO command_claims (command_id, ingest_id) VALUES ($1, $2)
ON CONFLICT (command_id) DO NOTHING RETURNING command_id
"""

_PURGE_CLAIMS_SQL = "DELETE FROM command_claims WHERE claimed_at < now() - interval '1 day'"

_INVALID_KEYS_SQL = """
SELECT id FROM api_keys
WHERE id = ANY($1::uuid[])
  AND (NOT is_active OR revoked_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= now()))
UNION ALL
SELECT k FROM unnest($1::uuid[]) AS k WHERE NOT EXISTS (SELECT 1 FROM api_keys WHERE id = k)
"""


class Database:
    """The ingest service's queries over one asyncpg pool."""

    def __init__(self, dsn: str, *, min_size: int, max_size: int, timeout: float) -> None:
        self._dsn = dsn
        self._min = min_size
        self._max = max_size
        self._timeout = timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min,
                max_size=self._max,
                timeout=self._timeout,
                command_timeout=self._timeout,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise DatabaseUnavailable(f"cannot open the database pool: {exc}") from exc

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except (OSError, asyncpg.PostgresError, TimeoutError):
            pool.terminate()

    async def _run(self, call: Callable[[asyncpg.Pool[asyncpg.Record]], Awaitable[T]]) -> T:
        if self._pool is None:
            raise DatabaseUnavailable("the database pool is not open")
        try:
            return await call(self._pool)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc

    async def verify_key(self, key: str, pepper: bytes) -> KeyCheck:
        """One indexed lookup on `lookup_id` plus one constant-time HMAC comparison."""
        parsed = apikeys.parse(key)
        if parsed is None:
            return KeyCheck(None, "malformed")
        row: Any = await self._run(lambda pool: pool.fetchrow(_KEY_SQL, parsed.lookup_id))
        if row is None:
            return KeyCheck(None, "unknown")
        server_id: uuid.UUID = row["server_id"]
        if not apikeys.verify(pepper, parsed.secret, bytes(row["secret_hash"])):
            # A right lookup id with a wrong secret says nothing about the server: do not name it.
            return KeyCheck(None, "mismatch")
        if row["revoked_at"] is not None:
            return KeyCheck(None, "revoked", server_id)
        if not row["is_active"]:
            return KeyCheck(None, "inactive", server_id)
        expires: datetime | None = row["expires_at"]
        if expires is not None and expires <= row["now"]:
            return KeyCheck(None, "expired", server_id)
        return KeyCheck(KeyIdentity(row["id"], server_id, row["name"]), "ok", server_id)

    async def claim_server(
        self,
        server_id: uuid.UUID,
        ingest_id: str,
        connection_id: uuid.UUID,
        key_id: uuid.UUID,
        remote: str | None,
        since: datetime,
    ) -> None:
        await self._run(
            lambda pool: pool.execute(
                _CLAIM_SERVER_SQL, server_id, ingest_id, connection_id, key_id, remote, since
            )
        )

    async def release_server(self, server_id: uuid.UUID, connection_id: uuid.UUID) -> None:
        """Forget the connection, unless a newer one of the same server took the row over."""
        await self._run(lambda pool: pool.execute(_RELEASE_SQL, server_id, connection_id))

    async def refresh_presence(self, ingest_id: str, connection_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Refresh this process's rows; returns the connections that still own their row."""
        rows = await self._run(lambda pool: pool.fetch(_PRESENCE_SQL, ingest_id, connection_ids))
        return {row["connection_id"] for row in rows}

    async def holder(self, server_id: uuid.UUID, fresh_within: float) -> str | None:
        """The ingest process holding the server's socket, if its row is fresh."""
        value: Any = await self._run(lambda pool: pool.fetchval(_HOLDER_SQL, server_id, fresh_within))
        return str(value) if value is not None else None

    async def claim_command(self, command_id: uuid.UUID, ingest_id: str) -> bool:
        """True for exactly one caller per command, across every ingest process."""
        value: Any = await self._run(lambda pool: pool.fetchval(_CLAIM_COMMAND_SQL, command_id, ingest_id))
        return value is not None

    async def purge_claims(self) -> None:
        await self._run(lambda pool: pool.execute(_PURGE_CLAIMS_SQL))

    async def invalid_keys(self, key_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Of these keys, the ones that are deleted, inactive, revoked or expired now."""
        rows = await self._run(lambda pool: pool.fetch(_INVALID_KEYS_SQL, key_ids))
        return {row[0] for row in rows}
