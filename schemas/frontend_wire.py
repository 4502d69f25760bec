"""The frames of the frontend sockets `/api/v1/ws/metrics/{server_id}`, `/api/v1/ws/logs/{server_id}`
and `/api/v1/ws/fleet` (every server of the user, for the dashboard's fleet page).

The seed's "Frontend WebSocket Protocol" (auth, metrics, log, alert, error), plus what FleetPulse
adds so a browser never silently misses data: positions, a history/live seam marker, resume, a
"history lost" notice, a token refresh on the open socket and JSON ping/pong. docs/live.md is the
prose version of this module.

A position is the Kafka (partition, offset) of the message a frame was made from. Offsets are
shared by every server of a partition, so consecutive frames of one server are not consecutive
offsets; a client keeps the last position it saw and sends it back as `resume` when it reconnects.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.alerts import AlertEvent


class CloseCode(IntEnum):
    """Close codes. 4000-4099: the client may reconnect (after a fresh token, a backoff or with
    its last position). 4400-4499: terminal, reconnecting with the same request fails again."""

    TOKEN_EXPIRED = 4001  # get a fresh access token, then reconnect
    AUTH_TIMEOUT = 4002  # no auth frame in time
    SLOW_CONSUMER = 4008  # the client did not keep up; reconnect with `resume`
    UNAVAILABLE = 4011  # a backend (Kafka, database) is unavailable or the API is shutting down
    BAD_REQUEST = 4400  # the first frame was not a valid auth frame, or asked for the impossible
    INVALID_TOKEN = 4401  # not a valid access token of ours
    NOT_FOUND = 4404  # no such server, or the user may not see it (one answer for both)
    TOO_LARGE = 4409  # a frame larger than the limit

    @property
    def may_reconnect(self) -> bool:
        return 4000 <= self.value < 4100


class Position(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    partition: int = Field(ge=0)
    offset: int = Field(ge=-1)  # -1: before the first message


Resolution = Literal["raw", "1m", "5m", "1h"]


# --- client to server -------------------------------------------------------------------------


class _ClientFrame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AuthFrame(_ClientFrame):
    """The first frame, and the answer to the server's `auth_required` on an open socket.

    `window_seconds` and `resolution` choose the metrics history; `lines` the log history;
    `resume` (the last position the client saw) replaces history with exactly what was missed.
    """

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=8192)
    window_seconds: int | None = Field(default=None, ge=0)
    resolution: Resolution = "raw"
    lines: int | None = Field(default=None, ge=0)
    resume: Position | None = None


class PingFrame(_ClientFrame):
    type: Literal["ping"]
    id: str | int | None = None


ClientFrame = Annotated[AuthFrame | PingFrame, Field(discriminator="type")]
CLIENT_FRAME: TypeAdapter[AuthFrame | PingFrame] = TypeAdapter(ClientFrame)


# --- server to client -------------------------------------------------------------------------


class _ServerFrame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuthSuccessFrame(_ServerFrame):
    type: Literal["auth_success"] = "auth_success"
    server_id: uuid.UUID | None  # None on the fleet socket, which follows every server of the user
    channel: Literal["metrics", "logs", "fleet"]
    expires_at: datetime  # the access token's expiry; `auth_required` comes before it
    servers: int | None = None  # fleet socket: how many servers it follows


class AuthRequiredFrame(_ServerFrame):
    """The token is about to expire: answer with an `auth` frame before `expires_at`."""

    type: Literal["auth_required"] = "auth_required"
    expires_at: datetime


class DiskData(_ServerFrame):
    mount: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float


class InterfaceData(_ServerFrame):
    interface: str
    bytes_sent: int
    bytes_recv: int
    packets_sent: int | None = None
    packets_recv: int | None = None
    errors_in: int | None = None
    errors_out: int | None = None
    # Derived from the previous sample of the same interface; None for the first sample a
    # stream knows of, and after a counter reset (never a negative rate).
    bytes_sent_per_second: float | None = None
    bytes_recv_per_second: float | None = None


class NetworkRates(_ServerFrame):
    """Sums over the interfaces that have a rate."""

    bytes_sent_per_second: float | None = None
    bytes_recv_per_second: float | None = None


class ProcessData(_ServerFrame):
    pid: int
    name: str
    user: str | None = None
    status: str | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    memory_rss_bytes: int | None = None


class MetricsData(_ServerFrame):
    timestamp: datetime
    cpu_percent: float
    memory_percent: float
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    uptime_seconds: int | None = None
    cpu_cores: int | None = None
    disks: tuple[DiskData, ...] = ()
    interfaces: tuple[InterfaceData, ...] = ()
    network: NetworkRates = NetworkRates()
    # The sample's top processes (top N by CPU and by memory); null when it carried none, and
    # in history frames (the newest list is at REST `GET /metrics/{server_id}/processes`).
    processes: tuple[ProcessData, ...] | None = None
    seq: int | None = None
    # Aggregated history (resolution other than "raw"): the bucket's width and sample count.
    resolution: Resolution = "raw"
    samples: int | None = None


class MetricsFrame(_ServerFrame):
    type: Literal["metrics"] = "metrics"
    data: MetricsData
    position: Position | None  # None for history rows from the database (see `history_end`)
    history: bool = False


class LogData(_ServerFrame):
    level: str
    message: str
    timestamp: datetime
    source: str | None = None
    entry_id: uuid.UUID
    seq: int | None = None


class LogFrame(_ServerFrame):
    type: Literal["log"] = "log"
    data: LogData
    position: Position | None
    history: bool = False


class AlertFrame(_ServerFrame):
    """An alert episode fired or resolved; on both sockets of the server."""

    type: Literal["alert"] = "alert"
    data: AlertEvent
    position: Position


class FleetItem(_ServerFrame):
    """One server's state on the fleet socket: status and the newest sample's headline values."""

    server_id: uuid.UUID
    status: Literal["online", "offline", "stale", "unknown"]
    last_seen: datetime | None
    sample_time: datetime | None
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None  # the fullest disk of the newest sample
    disk_mount: str | None


class FleetUpdateFrame(_ServerFrame):
    """Fleet socket: the servers that changed since the previous `fleet_update` (each once, its
    newest state), at most one frame per `fleet_flush_seconds`. The first one after
    `auth_success` carries every server the socket follows."""

    type: Literal["fleet_update"] = "fleet_update"
    data: tuple[FleetItem, ...]


class FleetChangedFrame(_ServerFrame):
    """Fleet socket: the set of servers the user can see changed (one added, shared, removed or
    unshared): refetch `GET /api/v1/fleet`. Updates of the new set follow."""

    type: Literal["fleet_changed"] = "fleet_changed"


class HistoryEndFrame(_ServerFrame):
    """The seam: every earlier frame came from history; everything after `position` follows live."""

    type: Literal["history_end"] = "history_end"
    position: Position


class HistoryLostFrame(_ServerFrame):
    """What the client asked for cannot be streamed: refetch that span through REST.

    After a refused `resume` (`position` None) a fresh history follows, as on a first connect.
    When persistence lags further behind than can be replayed, the span after `requested` up to
    and including `position` is skipped and the stream continues after `position`."""

    type: Literal["history_lost"] = "history_lost"
    requested: Position | None
    position: Position | None
    reason: str


class CoalescedFrame(_ServerFrame):
    """Metrics sockets only: `skipped` live frames were dropped because the client read too
    slowly; the next frame is the newest. Reconnect with `resume` to get them all."""

    type: Literal["coalesced"] = "coalesced"
    skipped: int


class ErrorFrame(_ServerFrame):
    type: Literal["error"] = "error"
    message: str
    code: int | None = None  # the close code that follows, when the socket is being closed


class PongFrame(_ServerFrame):
    type: Literal["pong"] = "pong"
    id: str | int | None = None


ServerFrame = Annotated[
    AuthSuccessFrame
    | AuthRequiredFrame
    | MetricsFrame
    | LogFrame
    | AlertFrame
    | FleetUpdateFrame
    | FleetChangedFrame
    | HistoryEndFrame
    | HistoryLostFrame
    | CoalescedFrame
    | ErrorFrame
    | PongFrame,
    Field(discriminator="type"),
]
SERVER_FRAME: TypeAdapter[
    AuthSuccessFrame
    | AuthRequiredFrame
    | MetricsFrame
    | LogFrame
    | AlertFrame
    | FleetUpdateFrame
    | FleetChangedFrame
    | HistoryEndFrame
    | HistoryLostFrame
    | CoalescedFrame
    | ErrorFrame
    | PongFrame
] = TypeAdapter(ServerFrame)


def encode(frame: _ServerFrame) -> str:
    """A frame as the text of one WebSocket message (encoded once, shared by every subscriber)."""
    return frame.model_dump_json(exclude_none=False)
