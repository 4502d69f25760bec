"""Reference messages: one valid message of each persisted kind, built from constants.

They tell a message's fault from the system's. A message that cannot be written is dead-lettered
only when the reference message of its kind can be written at that moment (in a transaction that
is rolled back); and the decoder refuses to start when a reference message does not decode. So a
bug that breaks every write stops persistence, loudly, instead of dead-lettering every message.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from schemas.canonical import (
    AgentEvent,
    CommandResult,
    DiskSample,
    InterfaceSample,
    LogRecord,
    MetricSample,
    log_entry_id,
)

Reference = MetricSample | LogRecord | AgentEvent | CommandResult

# No server has this id (uuid5 of a fixed name): a reference row, rolled back, touches nobody's.
PROBE_SERVER = uuid.uuid5(uuid.NAMESPACE_URL, "fleetpulse:persistence-probe")


def reference(kind: type[Reference], now: datetime) -> Reference:
    """A valid message of `kind` at `now`, exercising every table its kind writes."""
    if kind is MetricSample:
        return MetricSample(
            server_id=PROBE_SERVER,
            time=now,
            received_at=now,
            cpu_percent=1.0,
            memory_percent=2.0,
            memory_total_bytes=1024,
            memory_used_bytes=512,
            load1=0.5,
            load5=0.5,
            load15=0.5,
            uptime_seconds=60,
            cpu_cores=2,
            disks=(DiskSample(mount="/", total_bytes=100, used_bytes=40, free_bytes=60, percent=40.0),),
            interfaces=(InterfaceSample(interface="eth0", bytes_sent=1, bytes_recv=2),),
        )
    if kind is LogRecord:
        return LogRecord(
            server_id=PROBE_SERVER,
            entry_id=log_entry_id(PROBE_SERVER, now, "probe", "probe", 0),
            time=now,
            received_at=now,
            level="INFO",
            message="probe",
            source="probe",
        )
    if kind is AgentEvent:
        return AgentEvent(server_id=PROBE_SERVER, event="connected", time=now, connection_id=PROBE_SERVER)
    if kind is CommandResult:
        return CommandResult(
            command_id=PROBE_SERVER, server_id=PROBE_SERVER, success=True, output="probe", finished_at=now
        )
    raise TypeError(f"no reference message for {kind.__name__}")


REFERENCE_KINDS: tuple[type[Reference], ...] = (MetricSample, LogRecord, AgentEvent, CommandResult)
