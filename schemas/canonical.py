"""Canonical topic payloads: what ingest writes to Kafka and every consumer reads.

Both agent dialects decode into these models, so nothing downstream knows which dialect an agent
spoke. Conventions: times are UTC-aware; sizes and counters are integer bytes; network counters
are carried exactly as the agent reported them (cumulative since boot), and rates are derived
downstream from the difference between consecutive samples of one interface (a counter that goes
down is a reset: that interval has no rate, never a negative one).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC; a naive one is refused."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class DiskSample(_Payload):
    mount: str
    total_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    free_bytes: int = Field(ge=0)
    percent: float = Field(ge=0, le=100)


class InterfaceSample(_Payload):
    """Counters since boot, as reported. `interface` is "all" when an agent reports only a sum."""

    interface: str
    bytes_sent: int = Field(ge=0)
    bytes_recv: int = Field(ge=0)
    packets_sent: int | None = Field(default=None, ge=0)
    packets_recv: int | None = Field(default=None, ge=0)
    errors_in: int | None = Field(default=None, ge=0)
    errors_out: int | None = Field(default=None, ge=0)


class ContainerSample(_Payload):
    id: str
    name: str
    image: str | None = None
    state: str | None = None  # running, exited, ...
    status: str | None = None  # "Up 2 hours"
    cpu_percent: float | None = None
    memory_bytes: int | None = None


class ProcessSample(_Payload):
    pid: int
    name: str
    cpu_percent: float | None = None
    memory_percent: float | None = None
    user: str | None = None
    status: str | None = None


class MetricSample(_Payload):
    """One sample of one server at one instant. Natural key: (server_id, time)."""

    kind: Literal["metric_sample"] = "metric_sample"
    server_id: uuid.UUID
    time: UtcDatetime
    received_at: UtcDatetime
    seq: int | None = None  # the agent's own sequence number, when it sends one
    cpu_percent: float = Field(ge=0, le=100)
    memory_percent: float = Field(ge=0, le=100)
    memory_total_bytes: int | None = Field(default=None, ge=0)
    memory_used_bytes: int | None = Field(default=None, ge=0)
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    uptime_seconds: int | None = Field(default=None, ge=0)
    cpu_cores: int | None = Field(default=None, ge=0)
    disks: tuple[DiskSample, ...] = ()
    interfaces: tuple[InterfaceSample, ...] = ()
    containers: tuple[ContainerSample, ...] | None = None  # None: the host has no Docker
    processes: tuple[ProcessSample, ...] = ()  # top processes by CPU only, never all of them


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LogRecord(_Payload):
    """One log entry. Natural key: (server_id, time, entry_id).

    `entry_id` is derived from the entry's content and its place in the agent's frame
    (see `log_entry_id`), so the same entry replayed gets the same id and is stored once.
    """

    kind: Literal["log_record"] = "log_record"
    server_id: uuid.UUID
    entry_id: uuid.UUID
    time: UtcDatetime
    received_at: UtcDatetime
    level: LogLevel
    message: str
    source: str | None = None
    seq: int | None = None


_LOG_NAMESPACE = uuid.UUID("6f1c8d52-7a4e-4f0b-9a51-3e5e2b7f0c11")


def log_entry_id(
    server_id: uuid.UUID, time: datetime, source: str | None, message: str, ordinal: int
) -> uuid.UUID:
    """A deterministic id for a log entry: the same entry (same server, instant, source, text
    and position within its frame) always gets the same id, so replays are idempotent."""
    name = f"{server_id}|{time.isoformat()}|{source or ''}|{ordinal}|{message}"
    return uuid.uuid5(_LOG_NAMESPACE, name)


class AgentEvent(_Payload):
    """A connection lifecycle event of an agent socket."""

    kind: Literal["agent_event"] = "agent_event"
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    server_id: uuid.UUID
    event: Literal["connected", "disconnected", "auth_failed"]
    time: UtcDatetime
    connection_id: uuid.UUID | None = None
    ingest_id: str | None = None  # which ingest process held the socket
    dialect: Literal["seed", "legacy", "unknown"] = "unknown"
    reason: str | None = None
    remote: str | None = None
    superseded: bool = False  # disconnected because a newer socket of the same server took over


class CommandRequest(_Payload):
    """A shell or Docker command for one server's agent, published by the API."""

    kind: Literal["command_request"] = "command_request"
    command_id: uuid.UUID
    server_id: uuid.UUID
    action: Literal["shell", "start", "stop", "restart", "logs"]
    command: str | None = None  # for action == "shell"
    container_id: str | None = None  # for Docker actions
    tail: int | None = Field(default=None, ge=1, le=10_000)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    requested_by: uuid.UUID | None = None
    requested_at: UtcDatetime
    deadline: UtcDatetime  # after this the request is stale: never deliver it


class CommandResult(_Payload):
    """The outcome of a CommandRequest, whoever produced it (the agent, or ingest on failure)."""

    kind: Literal["command_result"] = "command_result"
    command_id: uuid.UUID
    server_id: uuid.UUID
    success: bool
    output: str | None = None
    error: str | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    message: str | None = None  # Docker actions' human-readable outcome
    logs: tuple[str, ...] | None = None  # for action == "logs"
    finished_at: UtcDatetime


class KeyRevocation(_Payload):
    """An API key was deactivated, deleted or expired: every ingest process closes its sockets."""

    kind: Literal["key_revocation"] = "key_revocation"
    key_id: uuid.UUID
    server_id: uuid.UUID
    reason: Literal["deactivated", "deleted", "expired"]
    time: UtcDatetime


class DeadLetter(_Payload):
    """A message that could never be decoded, with where it came from."""

    kind: Literal["dead_letter"] = "dead_letter"
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str  # the raw bytes, decoded as UTF-8 with replacement
    error: str
    time: UtcDatetime


# Module-level adapters: decode raw bytes straight into a model, never json.loads then validate.
METRIC_SAMPLE = TypeAdapter(MetricSample)
LOG_RECORD = TypeAdapter(LogRecord)
AGENT_EVENT = TypeAdapter(AgentEvent)
COMMAND_REQUEST = TypeAdapter(CommandRequest)
COMMAND_RESULT = TypeAdapter(CommandResult)
KEY_REVOCATION = TypeAdapter(KeyRevocation)
