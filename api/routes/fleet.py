"""`GET /fleet`: every server the caller can see, summarised for the dashboard's fleet page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from ..db import fleet as fleet_db
from ..db.pool import Record, connection
from ..deps import PoolDep, SettingsDep, TagsQuery, UserDep
from ..models import FleetAlertsOut, FleetOut, FleetServerOut, ServerStatus, SparkOut

router = APIRouter(prefix="/fleet", tags=["fleet"])

SPARK_POINTS = 15  # the sparkline: the last 15 minutes, one point per minute
SPARK_STEP = timedelta(minutes=1)


def spark_start(now: datetime) -> datetime:
    """The first bucket of the sparkline: the current minute is the last of its points."""
    return now.replace(second=0, microsecond=0) - (SPARK_POINTS - 1) * SPARK_STEP


def _server(row: Record, start: datetime) -> FleetServerOut:
    return FleetServerOut(
        server_id=row["id"],
        name=row["name"],
        tags=list(row["tags"]),
        role=row["role"],
        status=row["status"],
        last_seen=row["last_seen"],
        sample_time=row["sample_time"],
        cpu_percent=row["cpu_percent"],
        memory_percent=row["memory_percent"],
        disk_percent=row["disk_percent"],
        disk_mount=row["disk_mount"],
        spark=SparkOut(
            start=start,
            step_seconds=int(SPARK_STEP.total_seconds()),
            cpu_percent=list(row["spark_cpu"]),
            memory_percent=list(row["spark_mem"]),
        ),
        alerts=FleetAlertsOut(firing=row["firing"], max_severity=row["max_severity"]),
    )


@router.get("")
async def fleet(
    user: UserDep,
    pool: PoolDep,
    settings: SettingsDep,
    tag: TagsQuery = None,
    status: Annotated[list[ServerStatus] | None, Query(description="only servers in one of these")] = None,
) -> FleetOut:
    """Every server the caller can see (at most `fleet_max_servers`, by name), with its status,
    newest values, a 15-minute sparkline at 1-minute buckets and its firing alerts."""
    now = datetime.now(UTC)
    start = spark_start(now)
    limit = settings.fleet_max_servers
    async with connection(pool) as conn:
        rows = await fleet_db.fleet(
            conn,
            user.id,
            tags=tag,
            statuses=status,
            limit=limit + 1,  # one more tells whether the answer was cut
            spark_start=start,
            spark_points=SPARK_POINTS,
        )
    return FleetOut(
        generated_at=now,
        servers=[_server(row, start) for row in rows[:limit]],
        truncated=len(rows) > limit,
    )
