"""Canonical topic payloads: what ingest writes to Kafka and every consumer reads.

Both agent dialects decode into these models, so nothing downstream knows which dialect an agent
spoke. The data payloads carry the storage bounds of `schemas/bounds.py` too, so a message that
bypassed ingest's checks is dead-lettered at decoding with the field named.

Conventions: times are UTC-aware; sizes and counters are integer bytes; network counters
are carried exactly as the agent reported them (cumulative since boot), and rates are derived
downstream from the difference between consecutive samples of one interface (a counter that goes
down is a reset: that interval has no rate, never a negative one).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .bounds import Count, Int4, Line, Measure, Name, Output, Percent, SmallCount, Status
from .bounds import UtcDatetime as UtcDatetime  # re-exported: where every payload's times come from


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class DiskSample(_Payload):
    mount: Name
    total_bytes: Count
    used_bytes: Count
    free_bytes: Count
    percent: Percent


class InterfaceSample(_Payload):
    """Counters since boot, as reported. `interface` is "all" when an agent reports only a sum."""

    interface: Name
    bytes_sent: Count
    bytes_recv: Count
    packets_sent: Count | None = None
    packets_recv: Count | None = None
    errors_in: Count | None = None
    errors_out: Count | None = None


class ContainerSample(_Payload):
    id: Name
    name: Name
    image: Name | None = None
    state: Status | None = None  # running, exited, ...
    status: Status | None = None  # "Up 2 hours"
    cpu_percent: Measure | None = None  # of one core: above 100 on several
    memory_bytes: Count | None = None


class ProcessSample(_Payload):
    pid: SmallCount
    name: Name
    cpu_percent: Measure | None = None  # of one core: above 100 on several
    memory_percent: Measure | None = None  # of the host's memory, when the agent reports it
    memory_rss_bytes: Count | None = None  # resident set size, when reported
    user: Name | None = None
    status: Status | None = None


class MetricSample(_Payload):
    """One sample of one server at one instant. Natural key: (server_id, time)."""

    kind: Literal["metric_sample"] = "metric_sample"
    server_id: uuid.UUID
    time: UtcDatetime
    received_at: UtcDatetime
    seq: Count | None = None  # the agent's own sequence number, when it sends one
    cpu_percent: Percent
    memory_percent: Percent
    memory_total_bytes: Count | None = None
    memory_used_bytes: Count | None = None
    load1: Measure | None = None
    load5: Measure | None = None
    load15: Measure | None = None
    uptime_seconds: Count | None = None
    cpu_cores: SmallCount | None = None
    disks: tuple[DiskSample, ...] = Field(default=(), max_length=256)
    interfaces: tuple[InterfaceSample, ...] = Field(default=(), max_length=256)
    containers: tuple[ContainerSample, ...] | None = Field(default=None, max_length=4096)  # None: no Docker
    # The top processes, never all of them: the top N by CPU and the top N by memory (at most
    # 2N, each once; N is ingest's `max_processes`), CPU's first.
    processes: tuple[ProcessSample, ...] = Field(default=(), max_length=10_000)


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
    message: Line
    source: Name | None = None
    seq: Count | None = None


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
    output: Output | None = None
    error: Line | None = None
    exit_code: Int4 | None = None
    duration_ms: Count | None = None
    message: Line | None = None  # Docker actions' human-readable outcome
    logs: tuple[Line, ...] | None = Field(default=None, max_length=100_000)  # for action == "logs"
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
