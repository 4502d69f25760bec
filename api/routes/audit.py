"""The audit log: owners read their servers' trail; every user reads their own actions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from ..db import audit as audit_db
from ..db.pool import Record, connection
from ..deps import PoolDep, UserDep, require_role
from ..models import AuditOut, AuditPage
from ..openapi import problems
from ..pagination import Keyset, Pager, PagerDep, RemovedBefore

router = APIRouter(prefix="/audit", tags=["audit"])

AUDIT = Keyset("audit", (int,))


def _page(pager: Pager, rows: list[Record]) -> AuditPage:
    page, next_cursor = pager.cut(AUDIT, rows, lambda row: (row["id"],))
    return AuditPage(items=[AuditOut(**dict(row)) for row in page], next_cursor=next_cursor)


def _before_id(pager: Pager) -> int | None:
    after = pager.after(AUDIT)
    return None if after is None else int(after[0])


@router.get("/servers/{server_id}", openapi_extra=problems("forbidden"))
async def server_audit(
    server_id: uuid.UUID, user: UserDep, pool: PoolDep, pager: PagerDep, _before: RemovedBefore
) -> AuditPage:
    """State changes on the server, newest first (owners only)."""
    await require_role(pool, user, server_id, "owner")
    async with connection(pool) as conn:
        rows = await audit_db.list_audit(
            conn, server_id=server_id, user_id=None, before_id=_before_id(pager), limit=pager.fetch
        )
    return _page(pager, rows)


@router.get("/me")
async def my_audit(user: UserDep, pool: PoolDep, pager: PagerDep, _before: RemovedBefore) -> AuditPage:
    """The caller's own state-changing requests, newest first."""
    async with connection(pool) as conn:
        rows = await audit_db.list_audit(
            conn, server_id=None, user_id=user.id, before_id=_before_id(pager), limit=pager.fetch
        )
    return _page(pager, rows)
