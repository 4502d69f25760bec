"""The agent socket's frames as this agent speaks them (seed dialect), in plain dataclasses and JSON.

The server's models are `schemas/agent_wire.py` (pydantic); this agent carries its own, so that it
installs on any Python from 3.9 with psutil and websockets alone. The two are held together by
shared test vectors (`tests/vectors/agent_wire.json`), which both test suites load: a frame the
vectors call valid is accepted by both, one they call invalid is refused by both.

Outbound: every frame is checked (`problems`) before it is encoded, against the bounds the server
enforces, so a frame the server would refuse is never spooled (it would be refused on every replay).
Inbound: `decode_server_frame` returns one of the server frames this agent acts on, `Ignored` for
a well-formed frame it does not act on (the legacy dialect's), or None for anything malformed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Union

from .errors import WireError

MAX_SEQ = 2**63 - 1
MAX_INT = 2**63 - 1  # the database's bigint
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1  # its integer: cores, a pid, an exit code
NAME, STATUS, LINE, OUTPUT = 256, 256, 64 * 1024, 1024 * 1024  # lengths, as the server's
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # ingest's default window: not before...
AHEAD = timedelta(days=1)  # ...and not after the receiving clock plus this
LOG_LEVELS = frozenset(
    {"DEBUG", "TRACE", "INFO", "NOTICE", "WARN", "WARNING", "ERR", "ERROR"}
    | {"CRIT", "CRITICAL", "FATAL", "ALERT", "EMERG"}
)
ERROR_CODES = frozenset(
    {
        "invalid_json",
        "unknown_type",
        "validation",
        "server_id_mismatch",
        "retry",
        "invalid_key",
        "auth_required",
        "rate_limited",
    }
)
DOCKER_ACTIONS = frozenset({"start", "stop", "restart", "logs"})
CLOSE_POLICY = 1008  # the key was refused or revoked: terminal until the operator acts
CLOSE_SUPERSEDED = 4000  # a newer socket of the same server took over


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _clean(value: Any) -> Any:
    """A dataclass tree as JSON-ready values: None fields left out, times in ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _clean(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class _Frame:
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _clean(self)
        return out

    def to_bytes(self) -> bytes:
        """The frame as sent; WireError if the server would refuse it."""
        data = self.to_dict()
        found = problems(data)
        if found:
            raise WireError(f"{data.get('type')} frame refused before sending: {'; '.join(found[:5])}")
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    def with_seq(self, seq: int) -> Any:
        return dataclasses.replace(self, seq=seq)  # type: ignore[type-var]


# ---- agent -> server -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuthFrame(_Frame):
    api_key: str
    type: str = "auth"


@dataclass(frozen=True)
class PingFrame(_Frame):
    type: str = "ping"


@dataclass(frozen=True)
class Disk:
    path: str
    total: int
    used: int
    free: int
    percent: float


@dataclass(frozen=True)
class Interface:
    interface: str
    bytes_sent: int
    bytes_recv: int
    packets_sent: int | None = None
    packets_recv: int | None = None
    errors_in: int | None = None
    errors_out: int | None = None


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str | None = None
    state: str | None = None
    status: str | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    cpu_percent: float | None = None
    memory_percent: float | None = None
    memory_rss_bytes: int | None = None
    user: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class MetricsFrame(_Frame):
    timestamp: datetime
    cpu_percent: float
    memory_percent: float
    disk_usage: list[Disk] = field(default_factory=list)
    network: list[Interface] = field(default_factory=list)
    memory_total: int | None = None
    memory_used: int | None = None
    load_average: tuple[float, float, float] | None = None
    uptime_seconds: int | None = None
    cpu_cores: int | None = None
    containers: list[Container] | None = None
    top_processes: list[Process] = field(default_factory=list)
    seq: int | None = None
    type: str = "metrics"


@dataclass(frozen=True)
class LogEntry:
    level: str
    message: str
    timestamp: datetime
    source: str | None = None


@dataclass(frozen=True)
class LogsFrame(_Frame):
    entries: list[LogEntry]
    seq: int | None = None
    type: str = "logs"


@dataclass(frozen=True)
class CommandResponseFrame(_Frame):
    command_id: str
    exit_code: int
    output: str = ""
    duration_ms: int | None = None
    error: str | None = None
    seq: int | None = None
    type: str = "command_response"


@dataclass(frozen=True)
class DockerResponseFrame(_Frame):
    command_id: str
    success: bool
    message: str = ""
    logs: list[str] | None = None
    seq: int | None = None
    type: str = "docker_response"


# ---- the checks: the server's bounds, on the frame as a dict ---------------------------------

Check = Callable[[Any], Optional[str]]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(lo: int = -MAX_INT - 1, hi: int = MAX_INT) -> Check:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "must be an integer"
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    return check


def _num(lo: float | None = None, hi: float | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "must be a number"
        if isinstance(v, float) and not math.isfinite(v):
            return "must be finite"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must be between {lo} and {hi}"
        return None

    return check


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL text holds no NUL, UTF-8 no lone surrogate


def _str(max_length: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "must be a string"
        if max_length is not None and len(v) > max_length:
            return f"longer than {max_length}"
        return "holds NUL or a lone surrogate" if _UNSTORABLE.search(v) else None

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _time(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be an ISO 8601 time"
    try:
        parsed = datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
    except ValueError:
        return "must be an ISO 8601 time"
    if parsed.tzinfo is None:
        return "must carry its UTC offset"
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        return "is out of range in UTC"
    if parsed < EARLIEST:
        return f"must not be before {EARLIEST.isoformat()}"
    if parsed > utc_now() + AHEAD:
        return "is more than a day ahead of this clock"
    return None


def _uuid(v: Any) -> str | None:
    try:
        uuid.UUID(v)
    except (TypeError, ValueError, AttributeError):
        return "must be a UUID"
    return None


def _one_of(values: frozenset[str]) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, str) and (v in values or v.strip().upper() in values)
        return None if ok else f"must be one of {', '.join(sorted(values))}"

    return check


Schema = Mapping[str, "tuple[bool, Check]"]  # field -> (required, check)


def _obj(schema: Schema) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return "must be an object"
        found = _fields(v, schema, "")
        return found[0] if found else None

    return check


def _list(item: Check, min_length: int = 0, max_length: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return "must be a list"
        if len(v) < min_length or (max_length is not None and len(v) > max_length):
            return f"must hold {min_length} to {max_length} items"
        for i, x in enumerate(v):
            why = item(x)
            if why is not None:
                return f"[{i}] {why}"
        return None

    return check


def _triple(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) != 3:
        return "must be 3 numbers"
    bad = [why for why in map(MEASURE, v) if why]
    return bad[0] if bad else None


NONNEG = _int(0)
SMALL = _int(0, INT4_MAX)
MEASURE = _num(0)
_NAME = _str(NAME)
_STATUS = _str(STATUS)
_DISK: Schema = {
    "path": (True, _NAME),
    "total": (True, NONNEG),
    "used": (True, NONNEG),
    "free": (True, NONNEG),
    "percent": (True, _num(0, 100)),
}
_INTERFACE: Schema = {
    "interface": (True, _NAME),
    "bytes_sent": (True, NONNEG),
    "bytes_recv": (True, NONNEG),
    "packets_sent": (False, NONNEG),
    "packets_recv": (False, NONNEG),
    "errors_in": (False, NONNEG),
    "errors_out": (False, NONNEG),
}
_CONTAINER: Schema = {
    "id": (True, _NAME),
    "name": (True, _NAME),
    "image": (False, _NAME),
    "state": (False, _STATUS),
    "status": (False, _STATUS),
    "cpu_percent": (False, MEASURE),
    "memory_bytes": (False, NONNEG),
}
_PROCESS: Schema = {
    "pid": (True, SMALL),
    "name": (True, _NAME),
    "cpu_percent": (False, MEASURE),
    "memory_percent": (False, MEASURE),
    "memory_rss_bytes": (False, NONNEG),
    "user": (False, _NAME),
    "status": (False, _STATUS),
}
_ENTRY: Schema = {
    "level": (True, _one_of(LOG_LEVELS)),
    "message": (True, _str(LINE)),
    "timestamp": (True, _time),
    "source": (False, _NAME),
}
_SEQ = (False, _int(0, MAX_SEQ))
_SERVER_ID = (False, _uuid)
AGENT_SCHEMAS: dict[str, Schema] = {
    "auth": {"api_key": (True, _str(256))},  # also: no NUL
    "ping": {},
    "metrics": {
        "seq": _SEQ,
        "server_id": _SERVER_ID,
        "timestamp": (True, _time),
        "cpu_percent": (True, _num(0, 100)),
        "memory_percent": (True, _num(0, 100)),
        "disk_usage": (False, _list(_obj(_DISK), max_length=256)),
        "network": (False, _list(_obj(_INTERFACE), max_length=256)),
        "memory_total": (False, NONNEG),
        "memory_used": (False, NONNEG),
        "load_average": (False, _triple),
        "uptime_seconds": (False, NONNEG),
        "cpu_cores": (False, SMALL),
        "containers": (False, _list(_obj(_CONTAINER), max_length=4096)),
        "top_processes": (False, _list(_obj(_PROCESS), max_length=10_000)),
    },
    "logs": {"seq": _SEQ, "server_id": _SERVER_ID, "entries": (True, _list(_obj(_ENTRY), 1, 1000))},
    "command_response": {
        "seq": _SEQ,
        "command_id": (True, _uuid),
        "output": (False, _str(OUTPUT)),
        "exit_code": (True, _int(INT4_MIN, INT4_MAX)),
        "duration_ms": (False, NONNEG),
        "error": (False, _str(LINE)),
    },
    "docker_response": {
        "seq": _SEQ,
        "command_id": (True, _uuid),
        "success": (True, _bool),
        "message": (False, _str(LINE)),
        "logs": (False, _list(_str(LINE), max_length=100_000)),
    },
}


def _fields(data: Mapping[str, Any], schema: Schema, prefix: str) -> list[str]:
    out = []
    for name, (required, check) in schema.items():
        if name not in data or data[name] is None:
            if required:
                out.append(f"{prefix}{name}: required")
            continue
        why = check(data[name])
        if why is not None:
            out.append(f"{prefix}{name}: {why}")
    return out


def problems(frame: Mapping[str, Any]) -> list[str]:
    """Why the server would refuse this agent frame (empty: it would accept it)."""
    schema = AGENT_SCHEMAS.get(frame.get("type"))  # type: ignore[arg-type]
    if schema is None:
        return [f"type: not a frame this agent sends ({frame.get('type')!r})"]
    return _fields(frame, schema, "")


# ---- server -> agent -------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthSuccess:
    server_id: str
    message: str = ""


@dataclass(frozen=True)
class ErrorReply:
    message: str
    code: str | None = None
    detail: str | None = None
    seq: int | None = None
    retry: bool | None = None


@dataclass(frozen=True)
class Ack:
    seq: int


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class Command:
    command_id: str
    command: str


@dataclass(frozen=True)
class DockerCommand:
    command_id: str
    action: str
    container_id: str
    tail: int | None = None


@dataclass(frozen=True)
class Ignored:
    """A well-formed server frame this agent does not act on (the legacy dialect's)."""

    type: str


ServerFrame = Union[AuthSuccess, ErrorReply, Ack, Pong, Command, DockerCommand, Ignored]

_OPT_INT = _int()
SERVER_SCHEMAS: dict[str, Schema] = {
    "auth_success": {"server_id": (True, _uuid), "message": (False, _str())},
    "error": {
        "message": (True, _str()),
        "code": (False, _one_of(ERROR_CODES)),
        "detail": (False, _str()),
        "seq": _SEQ,
        "retry": (False, _bool),
    },
    "ack": {"seq": (True, _int(0, MAX_SEQ))},
    "pong": {},
    "command": {"command_id": (True, _uuid), "command": (True, _str())},
    "docker_command": {
        "command_id": (True, _uuid),
        "action": (True, _one_of(DOCKER_ACTIONS)),
        "container_id": (True, _str()),
        "tail": (False, _OPT_INT),
    },
    # The legacy dialect's: valid, and ignored by this agent.
    "metrics_received": {"status": (False, _one_of(frozenset({"ok"})))},
    "execute_command": {"request_id": (True, _str()), "command": (True, _str())},
    "start_container": {"request_id": (True, _str()), "container_id": (True, _str())},
    "stop_container": {
        "request_id": (True, _str()),
        "container_id": (True, _str()),
        "timeout": (False, _OPT_INT),
    },
    "restart_container": {
        "request_id": (True, _str()),
        "container_id": (True, _str()),
        "timeout": (False, _OPT_INT),
    },
    "get_container_logs": {
        "request_id": (True, _str()),
        "container_id": (True, _str()),
        "tail": (True, _OPT_INT),
    },
}


def decode_server_frame(raw: str | bytes) -> ServerFrame | None:
    """The frame, or None when it is not JSON, not a known type, or a field is wrong."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    schema = SERVER_SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None or _fields(data, schema, ""):
        return None
    if kind == "auth_success":
        return AuthSuccess(str(uuid.UUID(data["server_id"])), data.get("message") or "")
    if kind == "error":
        return ErrorReply(
            data["message"], data.get("code"), data.get("detail"), data.get("seq"), data.get("retry")
        )
    if kind == "ack":
        return Ack(data["seq"])
    if kind == "pong":
        return Pong()
    if kind == "command":
        return Command(str(uuid.UUID(data["command_id"])), data["command"])
    if kind == "docker_command":
        return DockerCommand(
            str(uuid.UUID(data["command_id"])), data["action"], data["container_id"], data.get("tail")
        )
    return Ignored(str(kind))
