"""Canonical Kafka payloads and database rows turned into frontend frames.

Live frames are built once per message and shared by every subscriber of that server (the text is
what each socket sends). Network rates are derived from the previous sample of the same interface
that the building stream knows (`RateState`): a counter that went down is a reset and has no rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.canonical import LogRecord, MetricSample
from schemas.frontend_wire import (
    DiskData,
    InterfaceData,
    LogData,
    LogFrame,
    MetricsData,
    MetricsFrame,
    NetworkRates,
    Position,
)


@dataclass(slots=True)
class RateState:
    """The last counters seen per interface of one server, to derive per-second rates."""

    last: dict[str, tuple[datetime, int, int]] = field(default_factory=dict)

    def interfaces(self, time: datetime, counters: list[InterfaceData]) -> tuple[InterfaceData, ...]:
        out: list[InterfaceData] = []
        for iface in counters:
            previous = self.last.get(iface.interface)
            sent_rate: float | None = None
            recv_rate: float | None = None
            if previous is not None:
                then, sent, recv = previous
                seconds = (time - then).total_seconds()
                if seconds > 0 and iface.bytes_sent >= sent and iface.bytes_recv >= recv:
                    sent_rate = (iface.bytes_sent - sent) / seconds
                    recv_rate = (iface.bytes_recv - recv) / seconds
            # Only move forward in time: a replayed older sample must not rewind the state.
            if previous is None or time > previous[0]:
                self.last[iface.interface] = (time, iface.bytes_sent, iface.bytes_recv)
            out.append(
                iface.model_copy(
                    update={"bytes_sent_per_second": sent_rate, "bytes_recv_per_second": recv_rate}
                )
            )
        return tuple(out)


def network_totals(interfaces: tuple[InterfaceData, ...]) -> NetworkRates:
    sent = [i.bytes_sent_per_second for i in interfaces if i.bytes_sent_per_second is not None]
    recv = [i.bytes_recv_per_second for i in interfaces if i.bytes_recv_per_second is not None]
    return NetworkRates(
        bytes_sent_per_second=sum(sent) if sent else None,
        bytes_recv_per_second=sum(recv) if recv else None,
    )


def metrics_frame(
    sample: MetricSample, rates: RateState, position: Position | None, *, history: bool = False
) -> MetricsFrame:
    counters = [InterfaceData(**i.model_dump()) for i in sample.interfaces]
    interfaces = rates.interfaces(sample.time, counters)
    data = MetricsData(
        timestamp=sample.time,
        cpu_percent=sample.cpu_percent,
        memory_percent=sample.memory_percent,
        memory_total_bytes=sample.memory_total_bytes,
        memory_used_bytes=sample.memory_used_bytes,
        load1=sample.load1,
        load5=sample.load5,
        load15=sample.load15,
        uptime_seconds=sample.uptime_seconds,
        cpu_cores=sample.cpu_cores,
        disks=tuple(DiskData(**d.model_dump()) for d in sample.disks),
        interfaces=interfaces,
        network=network_totals(interfaces),
        seq=sample.seq,
    )
    return MetricsFrame(data=data, position=position, history=history)


def log_frame(record: LogRecord, position: Position | None, *, history: bool = False) -> LogFrame:
    data = LogData(
        level=record.level,
        message=record.message,
        timestamp=record.time,
        source=record.source,
        entry_id=record.entry_id,
        seq=record.seq,
    )
    return LogFrame(data=data, position=position, history=history)
