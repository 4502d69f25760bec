"""Metrics and logs history from TimescaleDB: latest sample, bucketed series, paged logs.

Every query is bounded: a resolution has a maximum range, an answer a maximum number of points
(settings), and what would exceed them is refused with a 422 that says what to change, never
run. `resolution=auto` picks the finest resolution that fits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from schemas.bounds import STORABLE
from schemas.canonical import LogLevel

from ..db import history as history_db
from ..db.pool import Record, connection
from ..deps import PoolDep, SettingsDep, UserDep, require_role
from ..errors import RangeTooLarge, Unprocessable
from ..models import ApiTime, Page
from ..openapi import problems
from ..pagination import Keyset, PagerDep
from ..settings import ApiSettings

router = APIRouter(tags=["history"])

Resolution = Literal["auto", "raw", "1m", "1h"]
BUCKETS: dict[str, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1)}
MetricName = Literal["cpu_percent", "memory_percent", "memory_used_bytes", "load1", "load5", "load15"]
DiskMetric = Literal["percent", "used_bytes"]


class Point(BaseModel):
    time: datetime
    value: float | None
    min: float | None = None
    max: float | None = None
    samples: int | None = None


class Series(BaseModel):
    server_id: uuid.UUID
    metric: str
    resolution: Literal["raw", "1m", "1h"]
    start: datetime
    end: datetime
    points: list[Point]


class RatePoint(BaseModel):
    time: datetime
    sent_per_second: float | None
    recv_per_second: float | None


class RateSeries(BaseModel):
    server_id: uuid.UUID
    interface: str
    resolution: Literal["raw", "1m", "1h"]
    start: datetime
    end: datetime
    points: list[RatePoint]


class DiskOut(BaseModel):
    mount: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float


class InterfaceOut(BaseModel):
    interface: str
    bytes_sent: int
    bytes_recv: int
    packets_sent: int | None
    packets_recv: int | None
    errors_in: int | None
    errors_out: int | None


class LatestOut(BaseModel):
    server_id: uuid.UUID
    time: datetime
    received_at: datetime
    cpu_percent: float
    memory_percent: float
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    load1: float | None
    load5: float | None
    load15: float | None
    uptime_seconds: int | None
    cpu_cores: int | None
    disks: list[DiskOut]
    interfaces: list[InterfaceOut]


class LogOut(BaseModel):
    time: datetime
    entry_id: uuid.UUID
    level: str
    source: str | None
    message: str
    received_at: datetime


class LogPage(Page[LogOut]):
    """A page of log entries, newest first."""


def _max_range(settings: ApiSettings, resolution: str) -> timedelta:
    if resolution == "raw":
        return timedelta(hours=settings.history_max_range_raw_hours)
    if resolution == "1m":
        return timedelta(days=settings.history_max_range_1m_days)
    return timedelta(days=settings.history_max_range_1h_days)


def choose_resolution(settings: ApiSettings, start: datetime, end: datetime, asked: Resolution) -> str:
    """The resolution to use, or Unprocessable when the asked one cannot serve the range."""
    span = end - start
    if span <= timedelta(0):
        raise Unprocessable("start must be before end", loc=("query", "start"))
    candidates = ("raw", "1m", "1h") if asked == "auto" else (asked,)
    for resolution in candidates:
        if span > _max_range(settings, resolution):
            continue
        bucket = BUCKETS.get(resolution)
        if bucket is not None and span / bucket > settings.history_max_points:
            continue
        return resolution
    if asked == "auto":
        raise RangeTooLarge(
            f"the range is too long: at most {settings.history_max_range_1h_days:g} days "
            f"and {settings.history_max_points} points"
        )
    raise RangeTooLarge(
        f"resolution {asked} serves at most {_max_range(settings, asked)} and "
        f"{settings.history_max_points} points: ask a shorter range or a coarser resolution"
    )


def _range(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    return (start or end - default), end


def _check_points(settings: ApiSettings, rows: list[Record]) -> None:
    if len(rows) > settings.history_max_points:
        raise RangeTooLarge(
            f"more than {settings.history_max_points} points: ask a shorter range or a coarser resolution"
        )


@router.get("/metrics/{server_id}/latest")
async def latest(server_id: uuid.UUID, user: UserDep, pool: PoolDep) -> LatestOut | None:
    """The newest stored sample, with its disks and interfaces (null when there is none)."""
    await require_role(pool, user, server_id, "viewer")
    async with connection(pool) as conn:
        row = await history_db.latest_metric(conn, server_id)
        if row is None:
            return None
        disks = await history_db.disks_at(conn, server_id, row["time"])
        interfaces = await history_db.interfaces_at(conn, server_id, row["time"])
    return LatestOut(
        **dict(row),
        disks=[DiskOut(**dict(d)) for d in disks],
        interfaces=[InterfaceOut(**dict(i)) for i in interfaces],
    )


Start = Annotated[ApiTime | None, Query(description="inclusive; default: end minus one hour")]
End = Annotated[ApiTime | None, Query(description="exclusive; default: now")]


@router.get("/metrics/{server_id}/history", openapi_extra=problems("range-too-large"))
async def metric_history(
    server_id: uuid.UUID,
    user: UserDep,
    pool: PoolDep,
    settings: SettingsDep,
    metric: MetricName = "cpu_percent",
    start: Start = None,
    end: End = None,
    resolution: Resolution = "auto",
) -> Series:
    """One metric over a range: raw samples, or 1-minute / 1-hour buckets (avg, min, max)."""
    await require_role(pool, user, server_id, "viewer")
    start, end = _range(start, end, timedelta(hours=1))
    chosen = choose_resolution(settings, start, end, resolution)
    limit = settings.history_max_points + 1
    async with connection(pool) as conn:
        if chosen == "raw":
            rows = await history_db.metric_raw(conn, metric, server_id, start, end, limit)
        else:
            rows = await history_db.rollup_series(conn, chosen, server_id, metric, "", start, end, limit)
    _check_points(settings, rows)
    return Series(
        server_id=server_id,
        metric=metric,
        resolution=chosen,
        start=start,
        end=end,
        points=[Point(**dict(row)) for row in rows],
    )


@router.get("/metrics/{server_id}/disks/history", openapi_extra=problems("range-too-large"))
async def disk_history(
    server_id: uuid.UUID,
    user: UserDep,
    pool: PoolDep,
    settings: SettingsDep,
    mount: Annotated[str, Query(min_length=1, max_length=500), STORABLE],
    metric: DiskMetric = "percent",
    start: Start = None,
    end: End = None,
    resolution: Resolution = "auto",
) -> Series:
    await require_role(pool, user, server_id, "viewer")
    start, end = _range(start, end, timedelta(hours=1))
    chosen = choose_resolution(settings, start, end, resolution)
    limit = settings.history_max_points + 1
    async with connection(pool) as conn:
        if chosen == "raw":
            rows = await history_db.disk_raw(conn, metric, server_id, mount, start, end, limit)
        else:
            rows = await history_db.rollup_series(
                conn, chosen, server_id, f"disk_{metric}", mount, start, end, limit
            )
    _check_points(settings, rows)
    return Series(
        server_id=server_id,
        metric=f"disk:{mount}:{metric}",
        resolution=chosen,
        start=start,
        end=end,
        points=[Point(**dict(row)) for row in rows],
    )


@router.get("/metrics/{server_id}/interfaces/history", openapi_extra=problems("range-too-large"))
async def interface_history(
    server_id: uuid.UUID,
    user: UserDep,
    pool: PoolDep,
    settings: SettingsDep,
    interface: Annotated[str, Query(min_length=1, max_length=200), STORABLE],
    start: Start = None,
    end: End = None,
    resolution: Resolution = "auto",
) -> RateSeries:
    """Bytes per second sent and received on one interface (rates derived from the counters;
    buckets hold the mean rate)."""
    await require_role(pool, user, server_id, "viewer")
    start, end = _range(start, end, timedelta(hours=1))
    chosen = choose_resolution(settings, start, end, resolution)
    limit = settings.history_max_points + 1
    async with connection(pool) as conn:
        if chosen == "raw":
            rows = await history_db.interface_rates(conn, server_id, interface, start, end, limit)
            points = [RatePoint(**dict(row)) for row in rows]
        else:
            sent = await history_db.rollup_series(
                conn, chosen, server_id, "net_tx_bytes_per_s", interface, start, end, limit
            )
            recv = await history_db.rollup_series(
                conn, chosen, server_id, "net_rx_bytes_per_s", interface, start, end, limit
            )
            by_time: dict[datetime, RatePoint] = {}
            for row in sent:
                by_time[row["time"]] = RatePoint(
                    time=row["time"], sent_per_second=row["value"], recv_per_second=None
                )
            for row in recv:
                point = by_time.setdefault(
                    row["time"], RatePoint(time=row["time"], sent_per_second=None, recv_per_second=None)
                )
                point.recv_per_second = row["value"]
            rows = sent if len(sent) >= len(recv) else recv
            points = [by_time[t] for t in sorted(by_time)]
    _check_points(settings, rows)
    return RateSeries(
        server_id=server_id,
        interface=interface,
        resolution=chosen,
        start=start,
        end=end,
        points=points,
    )


LOGS = Keyset("logs", (datetime, uuid.UUID))


@router.get("/logs/{server_id}", openapi_extra=problems("range-too-large"))
async def logs(
    server_id: uuid.UUID,
    user: UserDep,
    pool: PoolDep,
    settings: SettingsDep,
    start: Annotated[ApiTime | None, Query(description="inclusive; default: end minus one day")] = None,
    end: End = None,
    level: Annotated[list[LogLevel] | None, Query()] = None,
    source: Annotated[str | None, Query(max_length=500), STORABLE] = None,
    q: Annotated[str | None, Query(max_length=500, description="text the message contains"), STORABLE] = None,
    *,
    pager: PagerDep,
) -> LogPage:
    """Log entries newest first, filtered by time range, level, source and text, paged by cursor."""
    await require_role(pool, user, server_id, "viewer")
    start, end = _range(start, end, timedelta(days=1))
    if end <= start:
        raise Unprocessable("start must be before end", loc=("query", "start"))
    if end - start > timedelta(days=settings.logs_max_range_days):
        raise RangeTooLarge(f"the range is at most {settings.logs_max_range_days:g} days")
    after = pager.after(LOGS)
    async with connection(pool) as conn:
        rows = await history_db.search_logs(
            conn,
            server_id,
            start,
            end,
            levels=list(level) if level else None,
            source=source,
            text=q,
            after=after,
            limit=pager.fetch,
        )
    page, next_cursor = pager.cut(LOGS, rows, lambda row: (row["time"], row["entry_id"]))
    return LogPage(items=[LogOut(**dict(row)) for row in page], next_cursor=next_cursor)
