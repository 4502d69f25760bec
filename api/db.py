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
from datetime import datetime
from typing import Literal, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

Role = Literal["owner", "operator", "viewer"]
ROLE_RANK: dict[Role, int] = {"viewer": 1, "operator": 2, "owner": 3}

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Executor: TypeAlias = "Conn | Pool"
Record: TypeAlias = asyncpg.Record


class DatabaseError(Exception):
    retriable = False


class DuplicateError(DatabaseError):
    """A unique constraint refused the row (SQLSTATE 23505)."""


class InvalidData(DatabaseError):
    """The database refused a value (SQLSTATE class 22: a NUL character in text, a number out
    of its column's range, ...): the client's input, not our fault."""


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


# --- servers -------------------------------------------------------------------------------------

_SERVER_COLUMNS = (
    "s.id, s.owner_id, s.name, s.host, s.port, s.metadata, s.status, s.last_seen, s.created_at, "
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
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO servers AS s (id, owner_id, name, host, port, metadata)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_SERVER_COLUMNS}, 'owner' AS role
        """,
        server_id,
        owner_id,
        name,
        host,
        port,
        metadata,
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
    conn: Executor, user_id: uuid.UUID, *, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        _SERVER_WITH_ROLE + " ORDER BY s.created_at, s.id LIMIT $2 OFFSET $3", user_id, limit, offset
    )


async def get_server(conn: Executor, user_id: uuid.UUID, server_id: uuid.UUID) -> asyncpg.Record | None:
    """The server with the caller's role, or None when the caller may not see it."""
    return await conn.fetchrow(_SERVER_WITH_ROLE + " AND s.id = $2", user_id, server_id)


async def update_server(conn: Executor, server_id: uuid.UUID, fields: dict[str, object]) -> None:
    allowed = {"name", "host", "port", "metadata", "commands_enabled", "command_allowlist"}
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


async def list_shares(conn: Executor, server_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT sh.server_id, sh.user_id, u.email, u.username, sh.role, sh.created_at
        FROM server_shares sh JOIN users u ON u.id = sh.user_id
        WHERE sh.server_id = $1 ORDER BY sh.created_at, sh.user_id
        """,
        server_id,
    )


async def delete_share(conn: Executor, server_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "DELETE FROM server_shares WHERE server_id = $1 AND user_id = $2", server_id, user_id
    )
    return status.endswith(" 1")


# --- API keys ------------------------------------------------------------------------------------

_KEY_COLUMNS = "id, server_id, name, is_active, last_used, expires_at, created_at, revoked_at"


async def insert_api_key(
    conn: Executor,
    key_id: uuid.UUID,
    server_id: uuid.UUID,
    lookup_id: str,
    secret_hash: bytes,
    name: str | None,
    expires_at: datetime | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO api_keys (id, server_id, lookup_id, secret_hash, name, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_KEY_COLUMNS}
        """,
        key_id,
        server_id,
        lookup_id,
        secret_hash,
        name,
        expires_at,
    )
    assert row is not None
    return row


async def get_api_key(conn: Executor, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)


async def get_api_key_by_lookup(conn: Executor, lookup_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_KEY_COLUMNS}, secret_hash FROM api_keys WHERE lookup_id = $1", lookup_id
    )


async def list_api_keys(conn: Executor, server_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE server_id = $1 ORDER BY created_at, id", server_id
    )


async def deactivate_api_key(conn: Executor, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        UPDATE api_keys SET is_active = false, revoked_at = coalesce(revoked_at, now())
        WHERE id = $1 RETURNING {_KEY_COLUMNS}
        """,
        key_id,
    )


async def delete_api_key(conn: Executor, key_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM api_keys WHERE id = $1", key_id)


async def due_expired_api_keys(conn: Executor, limit: int) -> list[asyncpg.Record]:
    """Keys past their expiry that are not marked revoked yet (their revocation is not announced)."""
    return await conn.fetch(
        """
        SELECT id, server_id FROM api_keys
        WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= now()
        ORDER BY expires_at LIMIT $1
        """,
        limit,
    )


async def mark_api_keys_expired(conn: Executor, key_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        "UPDATE api_keys SET is_active = false, revoked_at = coalesce(revoked_at, now()) WHERE id = ANY($1)",
        key_ids,
    )


# --- audit ---------------------------------------------------------------------------------------


async def insert_audit(
    conn: Executor,
    *,
    user_id: uuid.UUID | None,
    server_id: uuid.UUID | None,
    method: str,
    path: str,
    action: str,
    status: int,
    client: str | None,
    detail: dict[str, object],
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (user_id, server_id, method, path, action, status, client, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        user_id,
        server_id,
        method,
        path,
        action,
        status,
        client,
        detail,
    )


async def list_audit(
    conn: Executor,
    *,
    server_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    return await conn.fetch(
        """
        SELECT id, time, user_id, server_id, method, path, action, status, client, detail
        FROM audit_log
        WHERE ($1::uuid IS NULL OR server_id = $1) AND ($2::uuid IS NULL OR user_id = $2)
          AND ($3::bigint IS NULL OR id < $3)
        ORDER BY id DESC LIMIT $4
        """,
        server_id,
        user_id,
        before_id,
        limit,
    )


# --- history -------------------------------------------------------------------------------------
# Every query names its server and a closed time range, and is capped by a LIMIT: none scans
# without bound. Aggregates use time_bucket over the raw hypertables.

METRIC_COLUMNS = frozenset({"cpu_percent", "memory_percent", "memory_used_bytes", "load1", "load5", "load15"})
DISK_COLUMNS = frozenset({"percent", "used_bytes"})


async def latest_metric(conn: Executor, server_id: uuid.UUID) -> asyncpg.Record | None:
    # The newest chunk holds the answer: bounded by the (server_id, time) primary key index.
    return await conn.fetchrow(
        """
        SELECT server_id, time, cpu_percent, memory_percent, memory_total_bytes, memory_used_bytes,
               load1, load5, load15, uptime_seconds, cpu_cores, received_at
        FROM metrics WHERE server_id = $1 ORDER BY time DESC LIMIT 1
        """,
        server_id,
    )


async def disks_at(conn: Executor, server_id: uuid.UUID, at: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT mount, total_bytes, used_bytes, free_bytes, percent FROM metric_disks "
        "WHERE server_id = $1 AND time = $2 ORDER BY mount",
        server_id,
        at,
    )


async def interfaces_at(conn: Executor, server_id: uuid.UUID, at: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT interface, bytes_sent, bytes_recv, packets_sent, packets_recv, errors_in, errors_out "
        "FROM metric_interfaces WHERE server_id = $1 AND time = $2 ORDER BY interface",
        server_id,
        at,
    )


async def metric_raw(
    conn: Executor, column: str, server_id: uuid.UUID, start: datetime, end: datetime, limit: int
) -> list[asyncpg.Record]:
    if column not in METRIC_COLUMNS:
        raise ValueError(column)
    return await conn.fetch(
        f"""
        SELECT time, {column}::float8 AS value FROM metrics
        WHERE server_id = $1 AND time >= $2 AND time < $3 AND {column} IS NOT NULL
        ORDER BY time LIMIT $4
        """,
        server_id,
        start,
        end,
        limit,
    )


ROLLUP_TABLES = {"1m": "metric_rollups_1m", "1h": "metric_rollups_1h"}


async def rollup_series(
    conn: Executor,
    resolution: str,
    server_id: uuid.UUID,
    metric: str,
    label: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Buckets from the persistence processor's rollups (kept equal to SQL over the raw rows);
    metric names are the rollups' (`cpu_percent`, `disk_percent`, `net_rx_bytes_per_s`, ...)."""
    table = ROLLUP_TABLES[resolution]
    return await conn.fetch(
        f"""
        SELECT bucket AS time, avg AS value, min, max, count AS samples FROM {table}
        WHERE server_id = $1 AND metric = $2 AND label = $3 AND bucket >= $4 AND bucket < $5
        ORDER BY bucket LIMIT $6
        """,
        server_id,
        metric,
        label,
        start,
        end,
        limit,
    )


async def disk_raw(
    conn: Executor, column: str, server_id: uuid.UUID, mount: str, start: datetime, end: datetime, limit: int
) -> list[asyncpg.Record]:
    if column not in DISK_COLUMNS:
        raise ValueError(column)
    return await conn.fetch(
        f"""
        SELECT time, {column}::float8 AS value FROM metric_disks
        WHERE server_id = $1 AND mount = $2 AND time >= $3 AND time < $4
        ORDER BY time LIMIT $5
        """,
        server_id,
        mount,
        start,
        end,
        limit,
    )


async def interface_rates(
    conn: Executor,
    server_id: uuid.UUID,
    interface: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Bytes per second sent and received, one point per sample, from the counter difference to
    the previous sample of the interface (as the rollups derive them). A counter that went down
    (a reboot) gives no rate for that interval, never a negative one."""
    return await conn.fetch(
        """
        SELECT i.time,
               CASE WHEN i.bytes_sent >= p.bytes_sent
                    THEN (i.bytes_sent - p.bytes_sent) / extract(epoch FROM i.time - p.time)::float8
               END AS sent_per_second,
               CASE WHEN i.bytes_recv >= p.bytes_recv
                    THEN (i.bytes_recv - p.bytes_recv) / extract(epoch FROM i.time - p.time)::float8
               END AS recv_per_second
        FROM metric_interfaces i
        CROSS JOIN LATERAL (
            SELECT q.time, q.bytes_sent, q.bytes_recv FROM metric_interfaces q
            WHERE q.server_id = i.server_id AND q.interface = i.interface AND q.time < i.time
            ORDER BY q.time DESC LIMIT 1
        ) p
        WHERE i.server_id = $1 AND i.interface = $2 AND i.time >= $3 AND i.time < $4
        ORDER BY i.time LIMIT $5
        """,
        server_id,
        interface,
        start,
        end,
        limit,
    )


async def search_logs(
    conn: Executor,
    server_id: uuid.UUID,
    start: datetime,
    end: datetime,
    *,
    levels: list[str] | None,
    source: str | None,
    text: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first. `after` is the cursor: the (time, entry_id) of the previous page's last row;
    the next page starts strictly below it in that order."""
    like = None
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return await conn.fetch(
        """
        SELECT time, entry_id, level, source, message, received_at FROM logs
        WHERE server_id = $1 AND time >= $2 AND time < $3
          AND ($4::text[] IS NULL OR level = ANY($4))
          AND ($5::text IS NULL OR source = $5)
          AND ($6::text IS NULL OR message ILIKE $6)
          AND ($7::timestamptz IS NULL OR (time, entry_id) < ($7, $8::uuid))
        ORDER BY time DESC, entry_id DESC LIMIT $9
        """,
        server_id,
        start,
        end,
        levels,
        source,
        like,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


# --- commands ------------------------------------------------------------------------------------


async def agent_connected(conn: Executor, server_id: uuid.UUID, stale_seconds: float) -> bool:
    """Whether an ingest process holds the server's socket and refreshed that claim recently (a
    claim older than that belongs to a process that died)."""
    found = await conn.fetchval(
        "SELECT true FROM agent_connections "
        "WHERE server_id = $1 AND seen_at > now() - make_interval(secs => $2)",
        server_id,
        stale_seconds,
    )
    return bool(found)


async def command_settings(conn: Executor, server_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT commands_enabled, command_allowlist FROM servers WHERE id = $1", server_id
    )


async def insert_command_request(
    conn: Executor,
    *,
    command_id: uuid.UUID,
    server_id: uuid.UUID,
    requested_by: uuid.UUID,
    action: str,
    command: str | None,
    container_id: str | None,
    requested_at: datetime,
) -> None:
    """The request's columns of the history row; the persistence processor fills the result's
    (either may come first, so both sides upsert on command_id)."""
    await conn.execute(
        """
        INSERT INTO command_history (command_id, server_id, requested_by, action, command, container_id,
                                     requested_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (command_id) DO UPDATE
        SET requested_by = EXCLUDED.requested_by, action = EXCLUDED.action, command = EXCLUDED.command,
            container_id = EXCLUDED.container_id, requested_at = EXCLUDED.requested_at
        """,
        command_id,
        server_id,
        requested_by,
        action,
        command,
        container_id,
        requested_at,
    )


async def record_command_result(
    conn: Executor,
    *,
    command_id: uuid.UUID,
    success: bool,
    output: str | None,
    error: str | None,
    exit_code: int | None,
    duration_ms: int | None,
    message: str | None,
    finished_at: datetime,
) -> None:
    """The result as the API received it. The persistence processor writes the same values from
    the results topic; whichever comes second changes nothing (same values, same key)."""
    await conn.execute(
        """
        UPDATE command_history
        SET success = $2, output = $3, error = $4, exit_code = $5, duration_ms = $6, message = $7,
            finished_at = $8, result_received_at = coalesce(result_received_at, now())
        WHERE command_id = $1
        """,
        command_id,
        success,
        output,
        error,
        exit_code,
        duration_ms,
        message,
        finished_at,
    )


async def command_history(
    conn: Executor, server_id: uuid.UUID, before: datetime | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT command_id, server_id, requested_by, action, command, container_id, requested_at,
               success, exit_code, duration_ms, output, error, finished_at
        FROM command_history
        WHERE server_id = $1 AND requested_at IS NOT NULL AND ($2::timestamptz IS NULL OR requested_at < $2)
        ORDER BY requested_at DESC LIMIT $3
        """,
        server_id,
        before,
        limit,
    )


# --- alerts --------------------------------------------------------------------------------------


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
    conn: Executor, owner_id: uuid.UUID, origin: str | None, server_id: uuid.UUID | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT id, owner_id, server_id, origin, definition FROM alert_rules
        WHERE owner_id = $1 AND ($2::text IS NULL OR origin = $2) AND ($3::uuid IS NULL OR server_id = $3)
        ORDER BY created_at, id LIMIT 1000
        """,
        owner_id,
        origin,
        server_id,
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
    before: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Episodes on servers the user may see, newest first (`before`: started_at cursor)."""
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
          AND ($7::timestamptz IS NULL OR a.started_at < $7)
        ORDER BY a.started_at DESC, a.episode_id LIMIT $8
        """,
        user_id,
        server_id,
        state,
        severity,
        start,
        end,
        before,
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
