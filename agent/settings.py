"""The agent's settings (env prefix `FLEETPULSE_AGENT_`, or a TOML configuration file).

Read once, by the command line entry point, and passed down. Values in the configuration file win
over the environment; the environment fills in what the file leaves out.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

AGENT_PATH = "/api/v1/agents/ws"


def agent_socket_url(url: str) -> str:
    """The agent socket URL from a base URL: http becomes ws, https becomes wss, and an empty path
    becomes the agent socket's path. A ws:// or wss:// URL with a path is kept as it is."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ConfigError(
            f"FLEETPULSE_AGENT_SERVER_URL must be a ws://, wss://, http:// or https:// URL: {url!r}"
        )
    path = parts.path if parts.path not in ("", "/") else AGENT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_AGENT_", extra="forbid")

    # Where and who: the ingest socket (or its base URL) and this server's API key.
    server_url: str = "ws://127.0.0.1:8001" + AGENT_PATH
    api_key: SecretStr = SecretStr("")
    tls_ca_file: Path | None = None  # a private CA for wss://; the system store otherwise

    # Collection.
    interval_seconds: float = Field(default=5.0, ge=0.2, le=3600)
    top_processes: int = Field(default=10, ge=0, le=200)
    collect_containers: bool = True  # when a Docker daemon is reachable

    # The spool: every frame is written here before it is sent, and removed when acknowledged.
    state_dir: Path = Path(".state/agent")
    spool_max_frames: int = Field(default=100_000, ge=10)  # ~5.8 days of metrics at 5 s
    # Catch-up after an outage: frames per second replayed from the spool (live data is not paced).
    replay_rate_per_second: float = Field(default=20.0, gt=0)
    max_in_flight: int = Field(default=100, ge=1)  # sent but not yet acknowledged

    # The connection.
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    ack_timeout_seconds: float = Field(default=30.0, gt=0)  # an unacked frame this old: dead socket
    heartbeat_interval_seconds: float = Field(default=20.0, gt=0)
    heartbeat_timeout_seconds: float = Field(default=20.0, gt=0)
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=60.0, gt=0)
    # A fleet restarted at once spreads its first connects over this window.
    startup_jitter_seconds: float = Field(default=3.0, ge=0)
    max_frame_bytes: int = Field(default=1 << 20, ge=4096)

    # Logs: files the operator names, tailed across rotation, rate limited.
    log_files: list[Path] = Field(default_factory=list)
    log_poll_seconds: float = Field(default=1.0, gt=0)
    log_rate_per_second: float = Field(default=100.0, gt=0)  # lines; the excess is dropped and counted
    log_burst: int = Field(default=500, ge=1)
    log_max_line_bytes: int = Field(default=8192, ge=64)

    # Remote commands: off unless the operator turns them on here, on this server.
    commands_enabled: bool = False
    command_allowlist: list[str] = Field(default_factory=list)  # regexes, each matching a whole command
    command_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    command_max_output_bytes: int = Field(default=64 * 1024, ge=256)
    docker_actions_enabled: bool = False  # start, stop, restart, logs of containers

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return agent_socket_url(value)

    @field_validator("command_allowlist")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"command_allowlist: {pattern!r} is not a valid regex: {exc}") from exc
        return value

    @property
    def spool_path(self) -> Path:
        return self.state_dir / "spool.sqlite3"

    def require_key(self) -> str:
        key = self.api_key.get_secret_value().strip()
        if not key:
            raise ConfigError("FLEETPULSE_AGENT_API_KEY (or api_key in the configuration file) is required")
        return key


def load(config_file: Path | None = None, **overrides: Any) -> AgentSettings:
    """Settings from the environment, a TOML file (optional) and explicit overrides, in rising order
    of precedence. A bad value raises ConfigError naming it."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            with config_file.open("rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the configuration file {config_file}: {exc}") from exc
        data = dict(data.get("agent", data))  # the keys may sit under an [agent] table
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AgentSettings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid agent settings: {exc}") from exc
