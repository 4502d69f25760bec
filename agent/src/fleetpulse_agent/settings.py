"""The agent's settings (env prefix `FLEETPULSE_AGENT_`, or a TOML configuration file).

Read once, by the command line entry point, and passed down. Values in the configuration file win
over the environment; the environment fills in what the file leaves out; explicit overrides (the
command line's) win over both. Every value is checked against its bounds, and a bad or unknown one
stops the agent with a ConfigError naming it. In the environment, lists are JSON arrays
(`FLEETPULSE_AGENT_LOG_FILES='["/var/log/syslog"]'`) and booleans true/false, 1/0, yes/no.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI (a dependency on these Pythons only)
    import tomli as tomllib

AGENT_PATH = "/api/v1/agents/ws"
ENV_PREFIX = "FLEETPULSE_AGENT_"


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


def _bounds(ge: float | None = None, le: float | None = None, gt: float | None = None) -> dict[str, Any]:
    return {"ge": ge, "le": le, "gt": gt}


def _f(default: Any, **bounds: float) -> Any:
    return field(default=default, metadata=_bounds(**bounds))


@dataclass(frozen=True)
class AgentSettings:
    # Where and who: the ingest socket (or its base URL) and this server's API key.
    server_url: str = "ws://127.0.0.1:8001" + AGENT_PATH
    api_key: str = field(default="", repr=False)
    tls_ca_file: Path | None = None  # a private CA for wss://; the system store otherwise

    # Collection.
    interval_seconds: float = _f(5.0, ge=0.2, le=3600)
    # Processes: the top N by CPU and the top N by memory (a process in both is sent once).
    top_processes: int = _f(10, ge=0, le=200)
    collect_containers: bool = True  # when a Docker daemon is reachable

    # The spool: every frame is written here before it is sent, and removed when acknowledged.
    state_dir: Path = Path(".state/agent")
    spool_max_frames: int = _f(100_000, ge=10)  # ~5.8 days of metrics at 5 s
    # Catch-up after an outage: frames per second replayed from the spool (live data is not paced).
    replay_rate_per_second: float = _f(20.0, gt=0)
    max_in_flight: int = _f(100, ge=1)  # sent but not yet acknowledged

    # The connection.
    connect_timeout_seconds: float = _f(10.0, gt=0)
    ack_timeout_seconds: float = _f(30.0, gt=0)  # an unacked frame this old: dead socket
    heartbeat_interval_seconds: float = _f(20.0, gt=0)
    heartbeat_timeout_seconds: float = _f(20.0, gt=0)
    backoff_initial_seconds: float = _f(1.0, gt=0)
    backoff_max_seconds: float = _f(60.0, gt=0)
    # A fleet restarted at once spreads its first connects over this window.
    startup_jitter_seconds: float = _f(3.0, ge=0)
    max_frame_bytes: int = _f(1 << 20, ge=4096)

    # Logs: files the operator names (tailed across rotation) and journald units, rate limited.
    log_files: list[Path] = field(default_factory=list)
    journal_units: list[str] = field(default_factory=list)  # e.g. ["nginx.service", "ssh.service"]
    journalctl: str = "journalctl"  # the command that reads the journal
    log_poll_seconds: float = _f(1.0, gt=0)
    log_rate_per_second: float = _f(100.0, gt=0)  # lines; the excess is dropped and counted
    log_burst: int = _f(500, ge=1)
    log_max_line_bytes: int = _f(8192, ge=64, le=65536)  # the server's longest line: 64 KiB

    # Remote commands: off unless the operator turns them on here, on this server.
    commands_enabled: bool = False
    command_allowlist: list[str] = field(default_factory=list)  # regexes, each matching a whole command
    command_timeout_seconds: float = _f(30.0, gt=0, le=3600)
    command_max_output_bytes: int = _f(64 * 1024, ge=256)
    docker_actions_enabled: bool = False  # start, stop, restart, logs of containers

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_bounds(f.name, value, f.metadata)
        object.__setattr__(self, "server_url", agent_socket_url(self.server_url))
        for pattern in self.command_allowlist:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"command_allowlist: {pattern!r} is not a valid regex: {exc}") from exc
        for unit in self.journal_units:
            if not unit or unit.startswith("-") or any(c.isspace() for c in unit):
                raise ConfigError(f"journal_units: {unit!r} is not a unit name")

    @property
    def spool_path(self) -> Path:
        return self.state_dir / "spool.sqlite3"

    def require_key(self) -> str:
        key = self.api_key.strip()
        if not key:
            raise ConfigError("FLEETPULSE_AGENT_API_KEY (or api_key in the configuration file) is required")
        return key


def _check_bounds(name: str, value: Any, bounds: Mapping[str, Any]) -> None:
    ge, le, gt = bounds.get("ge"), bounds.get("le"), bounds.get("gt")
    if (ge is not None and value < ge) or (le is not None and value > le) or (gt is not None and value <= gt):
        limits = [
            f">= {ge}" if ge is not None else "",
            f"> {gt}" if gt is not None else "",
            f"<= {le}" if le is not None else "",
        ]
        raise ConfigError(f"{name} = {value!r}: must be {' and '.join(x for x in limits if x)}")


_FIELDS = {f.name: f for f in dataclasses.fields(AgentSettings)}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _kind(name: str) -> str:
    hint = str(_FIELDS[name].type)
    for kind in ("list", "bool", "int", "float", "Path"):
        if kind in hint:
            return kind
    return "str"


def _convert(name: str, value: Any, *, from_env: bool) -> Any:
    """One value to its field's type, or ConfigError naming the setting."""
    kind = _kind(name)
    where = ENV_PREFIX + name.upper() if from_env else name
    try:
        if from_env and kind == "list":
            value = json.loads(value)
        if kind == "list":
            if not isinstance(value, list) or not all(isinstance(v, (str, Path)) for v in value):
                raise ValueError("must be a list of strings")
            return [Path(v) for v in value] if name == "log_files" else [str(v) for v in value]
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise ValueError("must be true or false")
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError("must be an integer")
            return int(value)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError("must be a number")
            return float(value)
        if not isinstance(value, (str, Path)):
            raise ValueError("must be a string")
        if kind == "Path":
            return Path(value)
        return str(value)
    except ValueError as exc:
        raise ConfigError(f"invalid agent setting {where} = {value!r}: {exc}") from exc


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            out[name] = _convert(name, raw, from_env=True)
    return out


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}") from exc
    table = data.get("agent", data)  # the keys may sit under an [agent] table
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [agent] must be a table")
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return {k: _convert(k, v, from_env=False) for k, v in table.items()}


def load(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AgentSettings:
    """Settings from the environment, a TOML file (optional) and explicit overrides (None values
    are ignored), in rising order of precedence. A bad value raises ConfigError naming it."""
    data = from_env(os.environ if environ is None else environ)
    if config_file is not None:
        data.update(read_file(config_file))
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name}")
        if value is not None:
            data[name] = _convert(name, value, from_env=False)
    return AgentSettings(**data)


def settings(**values: Any) -> AgentSettings:
    """AgentSettings from Python values (tests, the simulator): converted and checked as a file's."""
    return AgentSettings(
        **{k: _convert(k, v, from_env=False) if k in _FIELDS else v for k, v in values.items()}
    )
