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
from pydantic import BaseModel, Field

from schemas.bounds import LINE, NAME, STORABLE
from schemas.canonical import LogLevel

from ..db import history as history_db
from ..db.pool import Record, connection
from ..deps import PoolDep, SettingsDep, UserDep, require_role
from ..errors import RangeTooLarge, Unprocessable
from ..models import EXAMPLE_SERVER, EXAMPLE_TIME, ApiTime, Page
from ..openapi import problems
from ..pagination import Keyset, PagerDep
from ..settings import ApiSettings

router = APIRouter(tags=["history"])

Resolution = Literal["auto", "raw", "1m", "1h"]
BUCKETS: dict[str, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1)}
MetricName = Literal["cpu_percent", "memory_percent", "memory_used_bytes", "load1", "load5", "load15"]
DiskMetric = Literal["percent", "used_bytes"]


_RESOLUTION = (
    "raw: the samples as stored; 1m, 1h: buckets of one minute, one hour (`resolution=auto` picks the "
    "finest that fits)"
)
_START = "the range's start, inclusive (UTC)"
_END = "the range's end, exclusive (UTC)"


class Point(BaseModel):
    """One sample, or one bucket of samples."""

    time: datetime = Field(
        description="the sample's time, or the bucket's start (UTC)", examples=[EXAMPLE_TIME]
    )
    value: float | None = Field(
        description="the sample's value, or the bucket's mean, in the metric's unit (percent 0 to 100, "
        "bytes, or a load average); null: the sample did not report it",
        examples=[12.5],
    )
    min: float | None = Field(
        default=None, description="the bucket's lowest value; null for a raw sample", examples=[3.0]
    )
    max: float | None = Field(
        default=None, description="the bucket's highest value; null for a raw sample", examples=[48.0]
    )
    samples: int | None = Field(
        default=None, description="how many samples the bucket holds; null for a raw sample", examples=[6]
    )


class Series(BaseModel):
    """One metric of one server over a range, oldest point first."""

    server_id: uuid.UUID = Field(description="the server", examples=[EXAMPLE_SERVER])
    metric: str = Field(
        description="the metric: a `metric` of `/history`, or `disk:<mount>:<metric>` for a disk",
        examples=["cpu_percent", "disk:/var:percent"],
    )
    resolution: Literal["raw", "1m", "1h"] = Field(description=_RESOLUTION, examples=["1m"])
    start: datetime = Field(description=_START, examples=["2026-01-01T11:00:00Z"])
    end: datetime = Field(description=_END, examples=[EXAMPLE_TIME])
    points: list[Point] = Field(
        description="its points, oldest first, at most the API's `history_max_points` setting (a range "
        "that would give more is a 422)"
    )


class RatePoint(BaseModel):
    """Transfer rates of one interface at one time, or over one bucket."""

    time: datetime = Field(
        description="the sample's time, or the bucket's start (UTC)", examples=[EXAMPLE_TIME]
    )
    sent_per_second: float | None = Field(
        description="bytes sent per second since the previous sample (a bucket's mean); null: no rate "
        "(the first sample, or a counter reset)",
        examples=[15360.0],
    )
    recv_per_second: float | None = Field(
        description="bytes received per second, likewise; null: no rate", examples=[40960.0]
    )


class RateSeries(BaseModel):
    """One interface's transfer rates over a range, oldest point first."""

    server_id: uuid.UUID = Field(description="the server", examples=[EXAMPLE_SERVER])
    interface: str = Field(description="the network interface", examples=["eth0"])
    resolution: Literal["raw", "1m", "1h"] = Field(description=_RESOLUTION, examples=["raw"])
    start: datetime = Field(description=_START, examples=["2026-01-01T11:00:00Z"])
    end: datetime = Field(description=_END, examples=[EXAMPLE_TIME])
    points: list[RatePoint] = Field(
        description="its points, oldest first, at most the API's `history_max_points` setting"
    )


class DiskOut(BaseModel):
    """One mounted file system of the sample."""

    mount: str = Field(description=f"its mount point, at most {NAME} characters", examples=["/var"])
    total_bytes: int = Field(description="its size, in bytes", examples=[107374182400])
    used_bytes: int = Field(description="bytes in use", examples=[78383153152])
    free_bytes: int = Field(description="bytes free", examples=[28991029248])
    percent: float = Field(description="how full it is, percent (0 to 100)", examples=[73.0])


class InterfaceOut(BaseModel):
    """One network interface of the sample: counters since its boot, as the agent read them."""

    interface: str = Field(description=f"its name, at most {NAME} characters", examples=["eth0"])
    bytes_sent: int = Field(description="bytes sent since boot", examples=[987654321])
    bytes_recv: int = Field(description="bytes received since boot", examples=[1234567890])
    packets_sent: int | None = Field(
        description="packets sent since boot; null: not reported", examples=[812345]
    )
    packets_recv: int | None = Field(
        description="packets received since boot; null: not reported", examples=[923456]
    )
    errors_in: int | None = Field(description="receive errors since boot; null: not reported", examples=[0])
    errors_out: int | None = Field(description="send errors since boot; null: not reported", examples=[0])


class LatestOut(BaseModel):
    """The server's newest stored sample."""

    server_id: uuid.UUID = Field(description="the server", examples=[EXAMPLE_SERVER])
    time: datetime = Field(description="when the agent took the sample (UTC)", examples=[EXAMPLE_TIME])
    received_at: datetime = Field(
        description="when ingest received it (UTC)", examples=["2026-01-01T12:00:00.150Z"]
    )
    cpu_percent: float = Field(description="CPU use, percent of all cores (0 to 100)", examples=[12.5])
    memory_percent: float = Field(description="memory use, percent (0 to 100)", examples=[41.5])
    memory_total_bytes: int | None = Field(
        description="the host's memory, in bytes; null: not reported", examples=[8589934592]
    )
    memory_used_bytes: int | None = Field(
        description="memory in use, in bytes; null: not reported", examples=[3564822528]
    )
    load1: float | None = Field(description="the 1-minute load average; null: not reported", examples=[0.42])
    load5: float | None = Field(description="the 5-minute load average; null: not reported", examples=[0.38])
    load15: float | None = Field(
        description="the 15-minute load average; null: not reported", examples=[0.30]
    )
    uptime_seconds: int | None = Field(
        description="seconds since the host booted; null: not reported", examples=[259200]
    )
    cpu_cores: int | None = Field(description="logical CPU cores; null: not reported", examples=[4])
    disks: list[DiskOut] = Field(description="its mounted file systems, by mount point")
    interfaces: list[InterfaceOut] = Field(description="its network interfaces, by name")


class LogOut(BaseModel):
    """One log entry an agent shipped."""

    time: datetime = Field(
        description="when it was logged, as the agent read it (UTC)", examples=[EXAMPLE_TIME]
    )
    entry_id: uuid.UUID = Field(
        description="its id, derived from the server, time, source, text and position, so a replayed "
        "entry is stored once",
        examples=["6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a"],
    )
    level: str = Field(description="its level: DEBUG, INFO, WARNING, ERROR or CRITICAL", examples=["ERROR"])
    source: str | None = Field(
        description="where it came from (a file, a journal unit); null: not reported", examples=["nginx"]
    )
    message: str = Field(
        description=f"the message, at most {LINE} characters", examples=["upstream timed out"]
    )
    received_at: datetime = Field(
        description="when ingest received it (UTC)", examples=["2026-01-01T12:00:00.150Z"]
    )


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
