"""Settings of the ingest service (env prefix `FLEETPULSE_INGEST_`).

Every limit of the agent socket is here, so every limit is configurable and tested.
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.bounds import TimeWindow, UtcDatetime
from schemas.settings import CommonSettings, EdgeSettings


def _default_ingest_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class IngestSettings(BaseSettings, EdgeSettings):
    """Also the edge's fields (`schemas.settings.EdgeSettings`): `FLEETPULSE_INGEST_TLS_CERTFILE`,
    `_TLS_KEYFILE`, `_MAX_CONNECTIONS`, `_MAX_CONNECTIONS_PER_ADDRESS`, `_REQUEST_HEAD_TIMEOUT`."""

    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_INGEST_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    # Names this process in agent_connections and in connection events; unique per process.
    ingest_id: str = Field(default_factory=_default_ingest_id, min_length=1, max_length=128)

    # Authentication.
    auth_timeout: float = Field(default=10.0, gt=0)  # seconds for the first (auth) frame
    # Failed attempts per client address, and per key refused for its own state (revoked,
    # inactive, expired), each within `auth_fail_window` seconds. Past the address's limit its
    # failures are answered as rate limited, and a valid key from it is still served.
    auth_fail_limit: int = Field(default=10, ge=1)
    key_fail_limit: int = Field(default=10, ge=1)
    auth_fail_window: float = Field(default=60.0, gt=0)
    auth_fail_tracked: int = Field(default=100_000, ge=1)  # addresses (and keys) remembered at most

    # REST request bodies (ingest reads none): refused past this many bytes with a 413.
    max_body_bytes: int = Field(default=16 * 1024, ge=0)

    # Frames.
    max_frame_bytes: int = Field(default=256 * 1024, ge=1024)
    invalid_frame_limit: int = Field(default=20, ge=1)  # invalid frames ...
    invalid_frame_window: float = Field(default=10.0, gt=0)  # ... within this many seconds close it
    idle_timeout: float = Field(default=90.0, gt=0)  # no frame at all for this long: close
    # Frames read per socket: `frame_rate` per second on average, `frame_burst` at once. Past it
    # the receiver waits before reading the next frame, so a flooding agent is slowed by TCP
    # backpressure (nothing refused, nothing lost, nothing buffered here). An agent sends a few
    # frames per collection interval and replays its spool at 20 per second.
    frame_rate: float = Field(default=100.0, gt=0)
    frame_burst: int = Field(default=500, ge=1)
    max_processes: int = Field(default=20, ge=0)  # per sample: the top N by CPU and by memory (<= 2N)
    # Agent timestamps accepted: from `timestamp_earliest` to `timestamp_ahead_seconds` past this
    # process's clock (the agent's clock may run ahead). A frame with a time outside is refused
    # with a `validation` error naming the field, never stored.
    timestamp_earliest: UtcDatetime = datetime(2000, 1, 1, tzinfo=UTC)
    timestamp_ahead_seconds: float = Field(default=86_400.0, gt=0, le=366 * 86_400.0)

    # Durability and acks.
    max_in_flight: int = Field(default=256, ge=1)  # frames produced but not yet acked, per socket
    produce_timeout: float = Field(default=5.0, gt=0)  # seconds for Kafka to confirm a frame
    linger_ms: int = Field(default=5, ge=0)

    # Heartbeat: protocol-level pings (uvicorn's), and the JSON ping/pong of the agents.
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    # permessage-deflate on the agent sockets: off by default. Its zlib state costs ~50 KB per
    # socket (tracemalloc, window 2^12, memLevel 5: uvicorn's) and CPU on every frame and ack.
    ws_per_message_deflate: bool = False

    # Commands.
    command_queue: int = Field(default=32, ge=1)  # commands waiting for one socket, at most
    # An answer Kafka did not confirm gets a `retry` error: the command waits for the agent's
    # resend until its own timeout, and at least this many seconds after that error (longer than
    # `produce_timeout`, so an answer Kafka confirms late is seen before the command is failed).
    command_resend_grace: float = Field(default=10.0, gt=0)
    presence_interval: float = Field(default=5.0, gt=0)  # refresh of agent_connections.seen_at
    key_recheck_interval: float = Field(default=30.0, gt=0)  # re-verify held sockets' keys

    # Database pool (key verification, agent_connections).
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    db_timeout: float = Field(default=5.0, gt=0)

    @property
    def timestamp_window(self) -> TimeWindow:
        return TimeWindow(self.timestamp_earliest, timedelta(seconds=self.timestamp_ahead_seconds))
