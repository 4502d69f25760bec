"""The agent socket's frames (`WS /api/v1/agents/ws`), both dialects, both directions.

Two dialects share the socket:

- the seed dialect (the seed document's "Agent WebSocket Protocol", plus what FleetPulse adds:
  `seq`/`ack`, `log`/`logs`, error codes), strict where the protocol is ours;
- the legacy ChatOps dialect (`metrics` nested under `data`, `metrics_received` acks,
  `execute_command` / `*_container` commands with a `request_id`), tolerant like its agent is.

Both share the `type` discriminator; the one ambiguous type, `metrics`, is told apart by its shape
(a `data` object is legacy). Every inbound frame decodes with `AGENT_FRAME.validate_json(raw)` and
every outbound frame with `SERVER_FRAME.validate_json(raw)`; `to_bytes()` encodes one.

Inbound metrics and logs convert into `schemas.canonical` payloads (`to_canonical`), so nothing
downstream knows which dialect an agent spoke. docs/protocol.md is the prose version of this file.

Every inbound value is bounded by a type of `schemas/bounds.py` matching where it is stored (a
`bigint`, an `integer`, a finite float, text without NUL, a time in the ingest window), and every
inbound string and list by a length, so a frame that decodes always converts, encodes and stores.
Decode with `decode(raw, window, now)`: it applies the ingest window to every timestamp.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from .bounds import GIB as GIB  # re-exported: GiB to bytes, for the legacy dialect's users
from .bounds import (
    STORABLE,
    AgentTime,
    Count,
    Gib,
    Int4,
    Line,
    Measure,
    Name,
    Output,
    Percent,
    SmallCount,
    Status,
    TimeWindow,
    gib_to_bytes,
)
from .canonical import (
    ContainerSample,
    DiskSample,
    InterfaceSample,
    LogLevel,
    LogRecord,
    MetricSample,
    ProcessSample,
    log_entry_id,
)

Seq = Count
RequestId = Annotated[str, Field(max_length=128), STORABLE]
MIB = 1024**2
# Legacy process memory: MiB, whose bytes (round(v * 2^20)) fit a bigint.
Mib = Annotated[float, Field(ge=0, le=2**40, allow_inf_nan=False)]


class _Frame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        """The frame as sent on the wire (absent optional fields are left out, not `null`)."""
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


# --------------------------------------------------------------------------------------------
# Agent -> server, both dialects
# --------------------------------------------------------------------------------------------


class AuthFrame(_Frame):
    """The first frame of every connection, in both dialects."""

    type: Literal["auth"]
    api_key: Annotated[str, Field(max_length=256), STORABLE]


class PingFrame(_Frame):
    """Application-level heartbeat, both dialects; answered by `PongFrame`."""

    type: Literal["ping"]


# ---- seed dialect ---------------------------------------------------------------------------


class SeedDisk(_Frame):
    path: Name
    total: Count
    used: Count
    free: Count
    percent: Percent


class SeedInterface(_Frame):
    interface: Name
    bytes_sent: Count
    bytes_recv: Count
    packets_sent: Count | None = None
    packets_recv: Count | None = None
    errors_in: Count | None = None
    errors_out: Count | None = None


class SeedContainer(_Frame):
    id: Name
    name: Name
    image: Name | None = None
    state: Status | None = None
    status: Status | None = None
    cpu_percent: Measure | None = None
    memory_bytes: Count | None = None


class SeedProcess(_Frame):
    pid: SmallCount
    name: Name
    cpu_percent: Measure | None = None
    memory_percent: Measure | None = None
    memory_rss_bytes: Count | None = None  # FleetPulse's extra: resident set size
    user: Name | None = None
    status: Status | None = None


_P = TypeVar("_P")


def top_processes(
    processes: Sequence[_P], n: int, cpu: Callable[[_P], float], memory: Callable[[_P], float]
) -> list[_P]:
    """The top `n` by CPU, then those of the top `n` by memory not already among them: at most
    2n, each once (heaps, so thousands of legacy processes cost little)."""
    if n <= 0:
        return []
    by_cpu = heapq.nlargest(n, processes, key=cpu)
    chosen = {id(p) for p in by_cpu}
    return by_cpu + [p for p in heapq.nlargest(n, processes, key=memory) if id(p) not in chosen]


class SeedMetricsFrame(_Frame):
    """The seed's `metrics` frame, plus optional well-known extras and an optional `seq`."""

    type: Literal["metrics"]
    seq: Seq | None = None
    server_id: uuid.UUID | None = None  # when present it must be the key's server
    timestamp: AgentTime
    cpu_percent: Percent
    memory_percent: Percent
    disk_usage: list[SeedDisk] = Field(default_factory=list, max_length=256)
    network: list[SeedInterface] = Field(default_factory=list, max_length=256)
    # Well-known extras: all optional.
    memory_total: Count | None = None
    memory_used: Count | None = None
    load_average: tuple[Measure, Measure, Measure] | None = None  # 1, 5 and 15 minutes
    uptime_seconds: Count | None = None
    cpu_cores: SmallCount | None = None
    containers: list[SeedContainer] | None = Field(default=None, max_length=4096)
    top_processes: list[SeedProcess] = Field(default_factory=list, max_length=10_000)

    def _processes(self, max_processes: int) -> list[SeedProcess]:
        return top_processes(
            self.top_processes,
            max_processes,
            cpu=lambda p: p.cpu_percent or 0.0,
            memory=lambda p: p.memory_percent if p.memory_percent is not None else (p.memory_rss_bytes or 0),
        )

    def canonical_bytes(self, server_id: uuid.UUID, received_at: datetime, max_processes: int) -> bytes:
        """`to_canonical(...).to_bytes()`, byte for byte, validated once: without building and
        validating the canonical models a second time. Sound because every field of this frame
        already has its canonical field's own type (the same bounds and lengths, in the same order:
        tests/unit/test_ingest_wire.py holds the two schemas to that), `received_at` is an aware
        UTC time from the receiving clock, and at most 2 x `max_processes` processes are kept."""
        load = self.load_average
        return orjson.dumps(
            {
                "kind": "metric_sample",
                # str(): the id may be a driver's UUID subclass (asyncpg's), which orjson refuses.
                "server_id": str(server_id),
                "time": self.timestamp,
                "received_at": received_at,
                "seq": self.seq,
                "cpu_percent": self.cpu_percent,
                "memory_percent": self.memory_percent,
                "memory_total_bytes": self.memory_total,
                "memory_used_bytes": self.memory_used,
                "load1": load[0] if load else None,
                "load5": load[1] if load else None,
                "load15": load[2] if load else None,
                "uptime_seconds": self.uptime_seconds,
                "cpu_cores": self.cpu_cores,
                "disks": [
                    {
                        "mount": d.path,
                        "total_bytes": d.total,
                        "used_bytes": d.used,
                        "free_bytes": d.free,
                        "percent": d.percent,
                    }
                    for d in self.disk_usage
                ],
                # Same field names, types and order on both sides: the validated values as they are.
                "interfaces": [vars(n) for n in self.network],
                "containers": None if self.containers is None else [vars(c) for c in self.containers],
                "processes": [vars(p) for p in self._processes(max_processes)],
            },
            option=orjson.OPT_UTC_Z,
        )

    def to_canonical(self, server_id: uuid.UUID, received_at: datetime, max_processes: int) -> MetricSample:
        load = self.load_average
        processes = self._processes(max_processes)
        return MetricSample(
            server_id=server_id,
            time=self.timestamp,
            received_at=received_at,
            seq=self.seq,
            cpu_percent=self.cpu_percent,
            memory_percent=self.memory_percent,
            memory_total_bytes=self.memory_total,
            memory_used_bytes=self.memory_used,
            load1=load[0] if load else None,
            load5=load[1] if load else None,
            load15=load[2] if load else None,
            uptime_seconds=self.uptime_seconds,
            cpu_cores=self.cpu_cores,
            disks=tuple(
                DiskSample(
                    mount=d.path, total_bytes=d.total, used_bytes=d.used, free_bytes=d.free, percent=d.percent
                )
                for d in self.disk_usage
            ),
            interfaces=tuple(InterfaceSample(**n.model_dump()) for n in self.network),
            containers=None
            if self.containers is None
            else tuple(ContainerSample(**c.model_dump()) for c in self.containers),
            processes=tuple(ProcessSample(**p.model_dump()) for p in processes),
        )


_LEVELS: dict[str, LogLevel] = {
    "DEBUG": "DEBUG",
    "TRACE": "DEBUG",
    "INFO": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARNING",
    "WARNING": "WARNING",
    "ERR": "ERROR",
    "ERROR": "ERROR",
    "CRIT": "CRITICAL",
    "CRITICAL": "CRITICAL",
    "FATAL": "CRITICAL",
    "ALERT": "CRITICAL",
    "EMERG": "CRITICAL",
}


def _level(value: Any) -> Any:
    if isinstance(value, str):
        return _LEVELS.get(value.strip().upper(), value)
    return value


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


# The JSON schema says what `_level` accepts (any case, the aliases, surrounding blanks), so the
# AsyncAPI document (schemas/asyncapi.py) takes the frames the socket takes.
_LEVEL_SCHEMA = {
    "type": "string",
    "description": "a level in any case, with the usual aliases (warn, err, crit, fatal, notice, "
    "trace...); stored as one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "pattern": r"^\s*(" + "|".join(_any_case(name) for name in _LEVELS) + r")\s*$",
    "examples": ["INFO", "warn"],
}
Level = Annotated[LogLevel, BeforeValidator(_level), WithJsonSchema(_LEVEL_SCHEMA, mode="validation")]


class LogEntry(_Frame):
    level: Level
    message: Line
    timestamp: AgentTime
    source: Name | None = None


class LogFrame(_Frame):
    """One log entry (FleetPulse's addition: the seed names no agent log message)."""

    type: Literal["log"]
    seq: Seq | None = None
    server_id: uuid.UUID | None = None
    level: Level
    message: Line
    timestamp: AgentTime
    source: Name | None = None

    def to_canonical(self, server_id: uuid.UUID, received_at: datetime) -> list[LogRecord]:
        entry = LogEntry(level=self.level, message=self.message, timestamp=self.timestamp, source=self.source)
        return _log_records(server_id, received_at, self.seq, [entry])


class LogsFrame(_Frame):
    """A batch of log entries, acknowledged (when it has a `seq`) as one."""

    type: Literal["logs"]
    seq: Seq | None = None
    server_id: uuid.UUID | None = None
    entries: list[LogEntry] = Field(min_length=1, max_length=1000)

    def to_canonical(self, server_id: uuid.UUID, received_at: datetime) -> list[LogRecord]:
        return _log_records(server_id, received_at, self.seq, self.entries)


def _log_records(
    server_id: uuid.UUID, received_at: datetime, seq: int | None, entries: list[LogEntry]
) -> list[LogRecord]:
    return [
        LogRecord(
            server_id=server_id,
            entry_id=log_entry_id(server_id, e.timestamp, e.source, e.message, ordinal),
            time=e.timestamp,
            received_at=received_at,
            level=e.level,
            message=e.message,
            source=e.source,
            seq=seq,
        )
        for ordinal, e in enumerate(entries)
    ]


class CommandResponseFrame(_Frame):
    """The agent's answer to a seed `command`."""

    type: Literal["command_response"]
    seq: Seq | None = None
    command_id: uuid.UUID
    output: Output = ""
    exit_code: Int4
    duration_ms: Count | None = None
    error: Line | None = None


class DockerResponseFrame(_Frame):
    """The agent's answer to a seed `docker_command` (`logs` only for the `logs` action)."""

    type: Literal["docker_response"]
    seq: Seq | None = None
    command_id: uuid.UUID
    success: bool
    message: Line = ""
    logs: list[Line] | None = Field(default=None, max_length=100_000)


# ---- legacy dialect --------------------------------------------------------------------------


class _Legacy(_Frame):
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)


class LegacyCpu(_Legacy):
    usage_percent: Percent
    cores: SmallCount | None = None
    frequency_mhz: Measure | None = None


class LegacyMemory(_Legacy):
    total_gb: Gib
    used_gb: Gib
    available_gb: Gib | None = None
    usage_percent: Percent


class LegacyDisk(_Legacy):
    total_gb: Gib
    used_gb: Gib
    available_gb: Gib
    usage_percent: Percent


class LegacyNetwork(_Legacy):
    bytes_sent: Count
    bytes_recv: Count
    packets_sent: Count | None = None
    packets_recv: Count | None = None


class LegacyContainer(_Legacy):
    id: Name
    name: Name
    image: Name | None = None
    status: Status | None = None
    state: Status | None = None


class LegacyProcess(_Legacy):
    pid: SmallCount
    name: Name
    cpu: Measure | None = None
    memory: Mib | None = None  # resident set size in MiB (not a percentage)
    status: Status | None = None
    user: Name | None = None


class LegacyMetricsData(_Legacy):
    server_id: Name | None = None  # informational only: the key decides the server
    timestamp: AgentTime  # the host's local offset: converted to UTC
    cpu: LegacyCpu
    memory: LegacyMemory
    disk: LegacyDisk | None = None
    network: LegacyNetwork | None = None
    containers: list[LegacyContainer] | None = Field(default=None, max_length=4096)
    processes: list[LegacyProcess] | None = Field(default=None, max_length=100_000)


_gib = gib_to_bytes


class LegacyMetricsFrame(_Legacy):
    """The legacy agent's `metrics`: everything under `data`, GiB floats, one root disk."""

    type: Literal["metrics"]
    data: LegacyMetricsData

    def to_canonical(self, server_id: uuid.UUID, received_at: datetime, max_processes: int) -> MetricSample:
        d = self.data
        disks: tuple[DiskSample, ...] = ()
        if d.disk is not None:
            disks = (
                DiskSample(
                    mount="/",
                    total_bytes=_gib(d.disk.total_gb),
                    used_bytes=_gib(d.disk.used_gb),
                    free_bytes=_gib(d.disk.available_gb),
                    percent=d.disk.usage_percent,
                ),
            )
        interfaces: tuple[InterfaceSample, ...] = ()
        if d.network is not None:
            # The legacy agent sums every interface: one "all" interface, counters as given.
            interfaces = (InterfaceSample(interface="all", **d.network.model_dump()),)
        processes = top_processes(
            d.processes or [], max_processes, cpu=lambda p: p.cpu or 0.0, memory=lambda p: p.memory or 0.0
        )
        return MetricSample(
            server_id=server_id,
            time=d.timestamp,
            received_at=received_at,
            cpu_percent=d.cpu.usage_percent,
            cpu_cores=d.cpu.cores,
            memory_percent=d.memory.usage_percent,
            memory_total_bytes=_gib(d.memory.total_gb),
            memory_used_bytes=_gib(d.memory.used_gb),
            disks=disks,
            interfaces=interfaces,
            containers=None
            if d.containers is None
            else tuple(
                ContainerSample(id=c.id, name=c.name, image=c.image, state=c.state, status=c.status)
                for c in d.containers
            ),
            processes=tuple(
                ProcessSample(
                    pid=p.pid,
                    name=p.name,
                    cpu_percent=p.cpu,
                    # The legacy `memory` is RSS in MiB, not a share of the host's memory.
                    memory_rss_bytes=None if p.memory is None else round(p.memory * MIB),
                    user=p.user,
                    status=p.status,
                )
                for p in processes
            ),
        )


class LegacyCommandResultData(_Legacy):
    output: Output = ""
    exit_code: Int4


class LegacyCommandResultFrame(_Legacy):
    type: Literal["command_result"]
    request_id: RequestId
    data: LegacyCommandResultData


class LegacyContainerData(_Legacy):
    container_id: Name
    status: Status | None = None


class LegacyContainerStartedFrame(_Legacy):
    type: Literal["container_started"]
    request_id: RequestId
    data: LegacyContainerData


class LegacyContainerStoppedFrame(_Legacy):
    type: Literal["container_stopped"]
    request_id: RequestId
    data: LegacyContainerData


class LegacyContainerRestartedFrame(_Legacy):
    type: Literal["container_restarted"]
    request_id: RequestId
    data: LegacyContainerData


class LegacyContainerLogsData(_Legacy):
    container_id: Name
    logs: list[Line] | None = Field(default=None, max_length=100_000)


class LegacyContainerLogsFrame(_Legacy):
    type: Literal["container_logs"]
    request_id: RequestId
    data: LegacyContainerLogsData


class LegacyErrorFrame(_Legacy):
    """A legacy agent's failure reply to a command."""

    type: Literal["error"]
    message: Line = ""
    request_id: RequestId | None = None


LegacyReplyFrame = (
    LegacyCommandResultFrame
    | LegacyContainerStartedFrame
    | LegacyContainerStoppedFrame
    | LegacyContainerRestartedFrame
    | LegacyContainerLogsFrame
    | LegacyErrorFrame
)


def _agent_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "metrics" and isinstance(value.get("data"), dict):
            return "legacy_metrics"
        return kind if isinstance(kind, str) else None
    if isinstance(value, BaseModel):
        if isinstance(value, LegacyMetricsFrame):
            return "legacy_metrics"
        kind = getattr(value, "type", None)
        return kind if isinstance(kind, str) else None
    return None


AgentFrame = Annotated[
    Annotated[AuthFrame, Tag("auth")]
    | Annotated[PingFrame, Tag("ping")]
    | Annotated[SeedMetricsFrame, Tag("metrics")]
    | Annotated[LegacyMetricsFrame, Tag("legacy_metrics")]
    | Annotated[LogFrame, Tag("log")]
    | Annotated[LogsFrame, Tag("logs")]
    | Annotated[CommandResponseFrame, Tag("command_response")]
    | Annotated[DockerResponseFrame, Tag("docker_response")]
    | Annotated[LegacyCommandResultFrame, Tag("command_result")]
    | Annotated[LegacyContainerStartedFrame, Tag("container_started")]
    | Annotated[LegacyContainerStoppedFrame, Tag("container_stopped")]
    | Annotated[LegacyContainerRestartedFrame, Tag("container_restarted")]
    | Annotated[LegacyContainerLogsFrame, Tag("container_logs")]
    | Annotated[LegacyErrorFrame, Tag("error")],
    Discriminator(_agent_tag),
]
"""Every frame an agent may send, in either dialect."""


# --------------------------------------------------------------------------------------------
# Server -> agent
# --------------------------------------------------------------------------------------------


class AuthSuccessFrame(_Frame):
    """Both dialects: the first frame the server sends after a valid `auth`."""

    type: Literal["auth_success"] = "auth_success"
    server_id: uuid.UUID
    message: str = "Connected successfully"


ErrorCode = Literal[
    "invalid_json",  # not a JSON object
    "unknown_type",  # `type` missing or not a frame this socket accepts
    "validation",  # a field is missing or has a wrong type or value
    "server_id_mismatch",  # the frame's server_id is not the API key's server
    "retry",  # Kafka could not take the frame in time: send it again (it was not acknowledged)
    "invalid_key",  # authentication failed (the socket closes with 1008)
    "auth_required",  # the first frame was not `auth`
    "rate_limited",  # too many failed authentications from this address: wait, then retry
]


class ErrorFrame(_Frame):
    """A refusal. `message` is the seed's text; `code` and `detail` say precisely what failed.

    `seq` is echoed when the refused frame carried one, so the agent knows which frame to resend.
    """

    type: Literal["error"] = "error"
    message: str
    code: ErrorCode | None = None
    detail: str | None = None
    seq: Seq | None = None
    retry: bool | None = None


class AckFrame(_Frame):
    """Seed dialect: frame `seq` is durable in Kafka (sent only after Kafka confirmed it)."""

    type: Literal["ack"] = "ack"
    seq: Seq


def ack_bytes(seq: int) -> bytes:
    """`AckFrame(seq=seq).to_bytes()` for a validated `seq`, without a model per acknowledgement."""
    return b'{"type":"ack","seq":%d}' % seq


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"


class CommandFrame(_Frame):
    """Seed dialect: run a shell command; answered by `command_response`."""

    type: Literal["command"] = "command"
    command_id: uuid.UUID
    command: str


class DockerCommandFrame(_Frame):
    """Seed dialect: a container action; answered by `docker_response`."""

    type: Literal["docker_command"] = "docker_command"
    command_id: uuid.UUID
    action: Literal["start", "stop", "restart", "logs"]
    container_id: str
    tail: int | None = None  # for `logs`


class MetricsReceivedFrame(_Frame):
    """Legacy dialect: one per `metrics` frame, once it is durable in Kafka."""

    type: Literal["metrics_received"] = "metrics_received"
    status: Literal["ok"] = "ok"


class ExecuteCommandFrame(_Frame):
    type: Literal["execute_command"] = "execute_command"
    request_id: str
    command: str


class StartContainerFrame(_Frame):
    type: Literal["start_container"] = "start_container"
    request_id: str
    container_id: str


class StopContainerFrame(_Frame):
    type: Literal["stop_container"] = "stop_container"
    request_id: str
    container_id: str
    timeout: int | None = None  # seconds


class RestartContainerFrame(_Frame):
    type: Literal["restart_container"] = "restart_container"
    request_id: str
    container_id: str
    timeout: int | None = None  # seconds


class GetContainerLogsFrame(_Frame):
    type: Literal["get_container_logs"] = "get_container_logs"
    request_id: str
    container_id: str
    tail: int


ServerFrame = Annotated[
    AuthSuccessFrame
    | ErrorFrame
    | AckFrame
    | PongFrame
    | CommandFrame
    | DockerCommandFrame
    | MetricsReceivedFrame
    | ExecuteCommandFrame
    | StartContainerFrame
    | StopContainerFrame
    | RestartContainerFrame
    | GetContainerLogsFrame,
    Field(discriminator="type"),
]
"""Every frame the server may send, in either dialect."""

# The seed's verbatim texts.
INVALID_KEY = "Invalid or inactive API key"
INVALID_FORMAT = "Invalid message format"
CONNECTED = "Connected successfully"

# Close codes (RFC 6455 and the 4000-4999 private range). "May reconnect": 1001, 1011, 1013,
# 4000. Terminal until the operator acts: 1008 (key refused or revoked), 1003, 1009.
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003  # a binary frame
CLOSE_POLICY = 1008  # bad key, auth timeout, revoked key, too many invalid frames or failed auths
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013  # the service is shutting down or overloaded
CLOSE_SUPERSEDED = 4000  # a newer socket of the same server took over: do not fight it

AGENT_FRAME: TypeAdapter[AgentFrame] = TypeAdapter(AgentFrame)
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


def decode(raw: bytes | str, window: TimeWindow, now: datetime) -> AgentFrame:
    """An agent's frame, every timestamp in it checked against `window` at `now`.

    Raises only `pydantic.ValidationError`: every bound is a validation error, so one frame can
    never end a socket (or, as the first frame, escape the authentication's error handling)."""
    return AGENT_FRAME.validate_json(raw, context=window.context(now))


class _SeqOnly(BaseModel):
    model_config = ConfigDict(extra="ignore")
    seq: Seq | None = None


_SEQ_ONLY = TypeAdapter(_SeqOnly)


def refused_seq(raw: bytes | str) -> int | None:
    """The `seq` of a frame that failed validation, when it has a valid one: echoed in the error
    frame, so the agent knows which frame was refused (it drops it instead of resending it)."""
    try:
        return _SEQ_ONLY.validate_json(raw).seq
    except ValidationError:
        return None
