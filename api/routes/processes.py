"""`GET /metrics/{server_id}/processes`: the newest sample's top processes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from ..db import processes as processes_db
from ..db.pool import connection
from ..deps import PoolDep, UserDep, require_role
from ..models import ProcessesOut, ProcessOut

router = APIRouter(tags=["history"])


@router.get("/metrics/{server_id}/processes")
async def processes(server_id: uuid.UUID, user: UserDep, pool: PoolDep) -> ProcessesOut:
    """The top processes of the newest sample that carried them (the top N by CPU and the top N
    by memory, N being ingest's `max_processes`); `timestamp` is that sample's time, null with an
    empty list when the server never sent processes."""
    await require_role(pool, user, server_id, "viewer")
    async with connection(pool) as conn:
        row = await processes_db.newest_processes(conn, server_id)
    if row is None:
        return ProcessesOut(timestamp=None, processes=[])
    return ProcessesOut(timestamp=row["time"], processes=[ProcessOut(**p) for p in row["processes"]])
