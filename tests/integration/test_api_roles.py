"""`api.db.server_role`: owner, co-owner, operator, viewer and stranger, on the real database."""

from __future__ import annotations

import uuid

from api import db


async def _user(pool: db.Pool) -> uuid.UUID:
    uid = uuid.uuid4()
    async with db.connection(pool) as conn:
        await db.insert_user(conn, uid, f"{uid.hex}@example.com", uid.hex, None, "x")
    return uid


async def test_server_role_for_each_kind_of_user(database_url: str) -> None:
    pool = await db.open_pool(database_url, min_size=1, max_size=2, command_timeout=10)
    try:
        owner, co_owner, operator, viewer, stranger = [await _user(pool) for _ in range(5)]
        server_id = uuid.uuid4()
        async with db.connection(pool) as conn:
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
            assert await db.server_role(conn, owner, server_id) == "owner"
            assert await db.server_role(conn, co_owner, server_id) == "owner"
            assert await db.server_role(conn, operator, server_id) == "operator"
            assert await db.server_role(conn, viewer, server_id) == "viewer"
            assert await db.server_role(conn, stranger, server_id) is None
            assert await db.server_role(conn, owner, uuid.uuid4()) is None
        # The pool itself is accepted too (one-off checks without holding a connection).
        assert await db.server_role(pool, viewer, server_id) == "viewer"
        assert db.has_role("operator", "viewer") and not db.has_role("viewer", "operator")
        assert not db.has_role(None, "viewer")
    finally:
        await db.close_pool(pool)
