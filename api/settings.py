"""Settings of the API service (env prefix `FLEETPULSE_API_`).

Every limit the API enforces is here, so an operator can tune it and a test can set it small.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import CommonSettings, EdgeSettings

from .live.settings import LiveSettings


class ApiSettings(BaseSettings, EdgeSettings):
    """Also the edge's fields (`schemas.settings.EdgeSettings`): `FLEETPULSE_API_TLS_CERTFILE`,
    `_TLS_KEYFILE`, `_MAX_CONNECTIONS`, `_MAX_CONNECTIONS_PER_ADDRESS`, `_REQUEST_HEAD_TIMEOUT`."""

    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_API_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)  # the frontend sockets' limits
    host: str = "127.0.0.1"
    port: int = 8000
    # The dashboard's build (Vite's output), served at `/`; None: the checkout's `web/dist`.
    web_dir: Path | None = None
    # Protocol-level pings on the frontend sockets detect dead browsers (uvicorn's settings).
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    # permessage-deflate on the frontend sockets: off by default. Its zlib state costs ~50 KB per
    # socket (tracemalloc, window 2^12, memLevel 5: uvicorn's), and every frame is compressed
    # once per socket, not once per channel. Live frames are small JSON.
    ws_per_message_deflate: bool = False

    # REST request bodies: refused past this many bytes with a 413, while they stream in (a
    # declared Content-Length past it before a byte is read). A server's metadata, stored as it
    # came, holds at most `metadata_max_bytes` once encoded as JSON (422 past it).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    metadata_max_bytes: int = Field(default=16 * 1024, ge=2)

    # Database pool (asyncpg), owned by the lifespan.
    db_pool_min: int = Field(default=1, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    db_command_timeout_seconds: float = Field(default=30.0, gt=0)

    # Tokens: short-lived access, rotating refresh.
    access_token_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    refresh_token_days: float = Field(default=14.0, gt=0, le=365)
    token_leeway_seconds: float = Field(default=5.0, ge=0, le=300)

    # Logins, limited on three keys within `login_window_seconds`, so that one attacker can lock
    # out at most one account from one address: attempts per (email, client address), counted
    # before the password is checked and cleared by a success; failures per account from any
    # address (distributed guessing; NIST 800-63B allows at most 100); failures per address for
    # any account (spraying).
    login_attempts: int = Field(default=10, ge=1)
    login_failures_per_account: int = Field(default=100, ge=1)
    login_failures_per_address: int = Field(default=100, ge=1)
    login_window_seconds: float = Field(default=300.0, gt=0)
    # Password changes per user (attempts, counted before the current password is checked).
    password_changes: int = Field(default=5, ge=1)
    password_change_window_seconds: float = Field(default=3600.0, gt=0)
    # The key pre-flight (GET /api-keys/me): failures per client address within the window; past
    # it failures answer 429, and a valid key is still answered.
    key_check_failures: int = Field(default=10, ge=1)
    key_check_window_seconds: float = Field(default=60.0, gt=0)

    # Remote commands.
    command_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    command_max_length: int = Field(default=4096, ge=1)
    commands_per_minute: int = Field(default=30, ge=1)  # per user and server
    # Docker containers are read from the newest samples on the metrics topic: at most this many
    # messages of the server's partition are scanned back.
    containers_scan_messages: int = Field(default=5000, ge=1)
    # An agent_connections claim older than this belongs to a dead ingest process (three of
    # ingest's 5 s presence refreshes).
    agent_presence_stale_seconds: float = Field(default=15.0, gt=0)
    # How often expired API keys are looked for (their revocation closes the agent's socket).
    key_expiry_sweep_seconds: float = Field(default=5.0, gt=0)

    # History queries: bounded so no request scans without limit.
    history_max_points: int = Field(default=5000, ge=10)
    history_max_range_raw_hours: float = Field(default=6.0, gt=0)
    history_max_range_1m_days: float = Field(default=7.0, gt=0)
    history_max_range_1h_days: float = Field(default=400.0, gt=0)
    # Backtests: samples replayed at most, servers covered by a rule without a server.
    backtest_max_samples: int = Field(default=200_000, ge=1)
    backtest_max_servers: int = Field(default=500, ge=1)
    # The fleet summary answers at most this many servers (the first by name).
    fleet_max_servers: int = Field(default=5000, ge=1, le=100_000)
    # Notification channels: per owner at most this many; a test send waits at most this long.
    channels_max_per_user: int = Field(default=100, ge=1)
    channel_test_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Every list (api/pagination.py): items per page at most, and when `limit` is left out.
    page_max_items: int = Field(default=1000, ge=1, le=10_000)
    page_default_items: int = Field(default=100, ge=1, le=10_000)
    logs_max_range_days: float = Field(default=31.0, gt=0)

    # The one-line agent install (`GET /install.sh`, docs/agent-install.md). `public_url` is this
    # API as the monitored servers reach it (the request's own URL when unset); `agent_public_url`
    # the agent socket as they reach it (derived from `public_url` when unset: ingest shares the
    # port in the one-process mode); `agent_wheelhouse` the agent's wheels and its dependencies'
    # (`fleetpulse-ops wheelhouse` builds it; <state_dir>/wheelhouse when unset).
    public_url: str | None = None
    agent_public_url: str | None = None
    agent_wheelhouse: Path | None = None

    @field_validator("public_url", "agent_public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        from .install import check_public_url

        return None if value is None else check_public_url(value)

    @property
    def wheelhouse(self) -> Path:
        return self.agent_wheelhouse or self.common.state_dir / "wheelhouse"
