"""Limits of the frontend live sockets (env prefix `FLEETPULSE_API_LIVE_`). Every one is tested."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .frames import VIRTUAL_INTERFACES


class LiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_API_LIVE_", extra="ignore")

    # Auth: the first frame must arrive within this; an expiring token is asked for again this
    # long before its expiry, and the socket is closed at the expiry if no fresh one came.
    auth_timeout_seconds: float = Field(default=10.0, gt=0)
    reauth_ahead_seconds: float = Field(default=60.0, ge=0)
    # The user's access to the server is checked again this often on an open socket: a removed
    # share, a deleted server or a deactivated user closes it within this time.
    access_recheck_seconds: float = Field(default=30.0, gt=0)
    # Largest client frame accepted (an auth frame with a token is well under 10 KiB).
    max_frame_bytes: int = Field(default=16_384, ge=256)
    # History on connect.
    metrics_window_seconds: int = Field(default=900, ge=0)
    metrics_max_window_seconds: int = Field(default=30 * 24 * 3600, ge=0)
    raw_max_window_seconds: int = Field(default=6 * 3600, ge=0)  # longer windows need a rollup
    max_history_frames: int = Field(default=5_000, ge=1)
    log_lines: int = Field(default=200, ge=0)
    max_log_lines: int = Field(default=5_000, ge=0)
    # Per-socket bounded queues: metrics coalesce to the latest frame, logs close the socket.
    metrics_queue_frames: int = Field(default=64, ge=2)
    logs_queue_frames: int = Field(default=2_000, ge=2)
    # A single send that takes longer than this closes the socket as a slow consumer.
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    # The hub keeps this many recent messages per partition in memory, so new subscribers join
    # the live stream without reading Kafka again; older spans are replayed from Kafka.
    window_messages: int = Field(default=20_000, ge=0)
    # Kafka consumers that replay such spans, each one replay at a time.
    replay_consumers: int = Field(default=2, ge=1, le=32)
    # A resume or catch-up further back than this many offsets is refused with `history_lost`.
    max_catchup_messages: int = Field(default=200_000, ge=0)
    # How long the reader waits for records before it applies assignment changes.
    # Kafka metadata, offsets and replays; a socket waiting longer is closed as "unavailable".
    kafka_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long closing a socket may take (a slow client may never read the close frame).
    close_timeout_seconds: float = Field(default=2.0, gt=0)
    # Interfaces left out of the network totals (every interface keeps its own rates): shell-style
    # patterns, a JSON list in the environment. Default: loopback and virtual interfaces.
    network_total_exclude: tuple[str, ...] = VIRTUAL_INTERFACES
    poll_timeout_ms: int = Field(default=100, ge=1)
    # The fleet socket (every server of the user): at most one `fleet_update` per flush period;
    # alerts and notices wait in a queue of at most `fleet_queue_frames` (past it: 4008).
    fleet_flush_seconds: float = Field(default=1.0, gt=0)
    fleet_queue_frames: int = Field(default=1_000, ge=2)
    # Status on the fleet socket follows the persistence processor's rules: keep this equal to
    # FLEETPULSE_PROCESSORS_STALE_AFTER_SECONDS (both 60 s by default).
    fleet_stale_after_seconds: float = Field(default=60.0, gt=0)
    fleet_stale_check_seconds: float = Field(default=5.0, gt=0)
    max_poll_records: int = Field(default=2_000, ge=1)
