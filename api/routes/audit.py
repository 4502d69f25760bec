"""The audit log: owners read their servers' trail; every user reads their own actions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from ..db import audit as audit_db
from ..db.pool import connection
from ..deps import PoolDep, UserDep, require_role
from ..models import AuditOut

router = APIRouter(prefix="/audit", tags=["audit"])

Before = Annotated[int | None, Query(ge=1, description="cursor: the id of the last row seen")]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/servers/{server_id}")
async def server_audit(
    server_id: uuid.UUID, user: UserDep, pool: PoolDep, before: Before = None, limit: Limit = 100
) -> list[AuditOut]:
    """State changes on the server, newest first (owners only)."""
    await require_role(pool, user, server_id, "owner")
    async with connection(pool) as conn:
        rows = await audit_db.list_audit(
            conn, server_id=server_id, user_id=None, before_id=before, limit=limit
        )
    return [AuditOut(**dict(row)) for row in rows]


@router.get("/me")
async def my_audit(user: UserDep, pool: PoolDep, before: Before = None, limit: Limit = 100) -> list[AuditOut]:
    """The caller's own state-changing requests, newest first."""
    async with connection(pool) as conn:
        rows = await audit_db.list_audit(conn, server_id=None, user_id=user.id, before_id=before, limit=limit)
    return [AuditOut(**dict(row)) for row in rows]
