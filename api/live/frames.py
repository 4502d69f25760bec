"""Canonical Kafka payloads and database rows turned into frontend frame text.

Live frames are built once per message and shared by every subscriber of that server (the text is
what each socket sends). Network rates are derived from the previous sample of the same interface
that the building stream knows (`RateState`): a counter that went down is a reset and has no rate.

The text is built from the validated canonical model's own JSON dump plus the derived fields, with
orjson: a pydantic frame model per message costs several times more for samples with many disks.
`schemas.frontend_wire` stays the contract; the tests parse every frame built here with it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from schemas.canonical import LogRecord, MetricSample

if TYPE_CHECKING:
    from .db import LogRow, MetricRow

_DUMPS_OPTIONS = orjson.OPT_UTC_Z  # times as "...Z", as pydantic writes them


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame, option=_DUMPS_OPTIONS).decode()


# MetricSample fields that are not part of the metrics frame's data.
_NOT_DATA = ("kind", "server_id", "received_at", "time", "containers")


# Interfaces left out of a sample's network totals by default: loopback and the virtual
# interfaces of containers, bridges, VMs and overlays (their traffic is the host's own, counted
# twice or never leaving it). Shell-style patterns; `FLEETPULSE_API_LIVE_NETWORK_TOTAL_EXCLUDE`.
VIRTUAL_INTERFACES: tuple[str, ...] = (
    "lo",
    "docker*",
    "veth*",
    "br-*",
    "virbr*",
    "vnet*",
    "cni*",
    "flannel*",
    "cali*",
    "vxlan*",
    "kube-*",
    "lxcbr*",
    "lxc*",
    "podman*",
    "tun*",
    "tap*",
)


@dataclass(slots=True)
class RateState:
    """The last counters seen per interface of one server, to derive per-second rates.

    Every interface gets its own rates; the totals (`network`) sum only those not matching
    `exclude`."""

    last: dict[str, tuple[datetime, int, int]] = field(default_factory=dict)
    exclude: tuple[str, ...] = VIRTUAL_INTERFACES
    _counted: dict[str, bool] = field(default_factory=dict)

    def counts(self, interface: str) -> bool:
        """Whether the interface's rates go into the totals (cached: names repeat every sample)."""
        known = self._counted.get(interface)
        if known is None:
            known = not any(fnmatch.fnmatchcase(interface, p) for p in self.exclude)
            self._counted[interface] = known
        return known

    def apply(self, time: datetime, interfaces: list[dict[str, Any]]) -> dict[str, float | None]:
        """Add `bytes_sent_per_second` / `bytes_recv_per_second` to each interface dict (from
        `bytes_sent` / `bytes_recv`) and return the sums for the frame's `network`."""
        total_sent: float | None = None
        total_recv: float | None = None
        for iface in interfaces:
            name, sent, recv = iface["interface"], iface["bytes_sent"], iface["bytes_recv"]
            previous = self.last.get(name)
            sent_rate: float | None = None
            recv_rate: float | None = None
            if previous is not None:
                then, prev_sent, prev_recv = previous
                seconds = (time - then).total_seconds()
                if seconds > 0 and sent >= prev_sent and recv >= prev_recv:
                    sent_rate = (sent - prev_sent) / seconds
                    recv_rate = (recv - prev_recv) / seconds
                    if self.counts(name):
                        total_sent = (total_sent or 0.0) + sent_rate
                        total_recv = (total_recv or 0.0) + recv_rate
            # Only move forward in time: a replayed older sample must not rewind the state.
            if previous is None or time > previous[0]:
                self.last[name] = (time, sent, recv)
            iface["bytes_sent_per_second"] = sent_rate
            iface["bytes_recv_per_second"] = recv_rate
        return {"bytes_sent_per_second": total_sent, "bytes_recv_per_second": total_recv}


def _position(partition: int, offset: int | None) -> dict[str, int] | None:
    return None if offset is None else {"partition": partition, "offset": offset}


def metrics_text(
    sample: MetricSample, rates: RateState, partition: int, offset: int | None, *, history: bool = False
) -> str:
    """A `metrics` frame for one canonical sample."""
    data: dict[str, Any] = sample.model_dump(mode="json", exclude=set(_NOT_DATA))
    data["timestamp"] = sample.time
    data["processes"] = data["processes"] or None  # null: this sample carried none
    data["network"] = rates.apply(sample.time, data["interfaces"])
    data["resolution"] = "raw"
    data["samples"] = None
    frame = {"type": "metrics", "data": data, "position": _position(partition, offset), "history": history}
    return _dumps(frame)


def history_metrics_text(row: MetricRow, rates: RateState, resolution: str) -> str:
    """A `metrics` frame for a database row (raw, or a bucket of an aggregated resolution)."""
    interfaces = [
        {
            "interface": i.interface,
            "bytes_sent": i.bytes_sent,
            "bytes_recv": i.bytes_recv,
            "packets_sent": i.packets_sent,
            "packets_recv": i.packets_recv,
            "errors_in": i.errors_in,
            "errors_out": i.errors_out,
        }
        for i in row.interfaces
    ]
    if resolution == "raw":
        network = rates.apply(row.time, interfaces)
    else:
        network = {"bytes_sent_per_second": None, "bytes_recv_per_second": None}
    data = {
        "timestamp": row.time,
        "cpu_percent": row.cpu_percent,
        "memory_percent": row.memory_percent,
        "memory_total_bytes": row.memory_total_bytes,
        "memory_used_bytes": row.memory_used_bytes,
        "load1": row.load1,
        "load5": row.load5,
        "load15": row.load15,
        "uptime_seconds": row.uptime_seconds,
        "cpu_cores": row.cpu_cores,
        "disks": [d.model_dump(mode="json") for d in row.disks],
        "interfaces": interfaces,
        "network": network,
        "processes": None,  # only live samples carry them (REST: /metrics/{id}/processes)
        "seq": None,
        "resolution": resolution,
        "samples": row.samples,
    }
    return _dumps({"type": "metrics", "data": data, "position": None, "history": True})


def log_text(record: LogRecord, partition: int, offset: int | None, *, history: bool = False) -> str:
    """A `log` frame for one canonical log record (or a database row shaped as one)."""
    data = {
        "level": record.level,
        "message": record.message,
        "timestamp": record.time,
        "source": record.source,
        "entry_id": record.entry_id,
        "seq": record.seq,
    }
    frame = {"type": "log", "data": data, "position": _position(partition, offset), "history": history}
    return _dumps(frame)


def history_log_text(row: LogRow) -> str:
    data = {
        "level": row.level,
        "message": row.message,
        "timestamp": row.time,
        "source": row.source,
        "entry_id": str(row.entry_id),  # asyncpg's own UUID type, which orjson does not know
        "seq": None,
    }
    return _dumps({"type": "log", "data": data, "position": None, "history": True})
