"""`api.db.servers.server_role`: owner, co-owner, operator, viewer and stranger, on the real database."""

from __future__ import annotations

import uuid

from api.db import servers as servers_db
from api.db import users as users_db
from api.db.pool import Pool, close_pool, connection, open_pool


async def _user(pool: Pool) -> uuid.UUID:
    uid = uuid.uuid4()
    async with connection(pool) as conn:
        await users_db.insert_user(conn, uid, f"{uid.hex}@example.com", uid.hex, None, "x")
    return uid


async def test_server_role_for_each_kind_of_user(database_url: str) -> None:
    pool = await open_pool(database_url, min_size=1, max_size=2, command_timeout=10)
    try:
        owner, co_owner, operator, viewer, stranger = [await _user(pool) for _ in range(5)]
        server_id = uuid.uuid4()
        async with connection(pool) as conn:
            await conn.execute(
                "INSERT INTO servers (id, owner_id, name) VALUES ($1, $2, 'web-1')", server_id, owner
            )
            for user, role in ((co_owner, "owner"), (operator, "operator"), (viewer, "viewer")):
                await conn.execute(
                    "INSERT INTO server_shares (server_id, user_id, role) VALUES ($1, $2, $3)",
                    server_id,
                    user,
                    role,
                )
            assert await servers_db.server_role(conn, owner, server_id) == "owner"
            assert await servers_db.server_role(conn, co_owner, server_id) == "owner"
            assert await servers_db.server_role(conn, operator, server_id) == "operator"
            assert await servers_db.server_role(conn, viewer, server_id) == "viewer"
            assert await servers_db.server_role(conn, stranger, server_id) is None
            assert await servers_db.server_role(conn, owner, uuid.uuid4()) is None
        # The pool itself is accepted too (one-off checks without holding a connection).
        assert await servers_db.server_role(pool, viewer, server_id) == "viewer"
        assert servers_db.has_role("operator", "viewer") and not servers_db.has_role("viewer", "operator")
        assert not servers_db.has_role(None, "viewer")
    finally:
        await close_pool(pool)
