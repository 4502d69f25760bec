"""What the hub reads: one `Channel` per topic, with the function that turns a message into frame text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from schemas import topics
from schemas.alerts import ALERT_EVENT
from schemas.canonical import LOG_RECORD, METRIC_SAMPLE
from schemas.frontend_wire import AlertFrame, Position, encode

from .frames import RateState, log_text, metrics_text

# A message's value, the server's rate state (metrics only), the message's partition and offset.
Build = Callable[[bytes, RateState, int, int], str]


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    topic: str  # the full topic name on the broker (with the deployment's prefix)
    droppable: bool  # metrics frames may be coalesced for a slow client; logs and alerts never
    build: Build | None  # None: no per-server frames (agent events, read by the fleet tap only)


def _metrics(value: bytes, rates: RateState, partition: int, offset: int) -> str:
    return metrics_text(METRIC_SAMPLE.validate_json(value), rates, partition, offset)


def _log(value: bytes, rates: RateState, partition: int, offset: int) -> str:
    return log_text(LOG_RECORD.validate_json(value), partition, offset)


def _alert(value: bytes, rates: RateState, partition: int, offset: int) -> str:
    position = Position(partition=partition, offset=offset)
    return encode(AlertFrame(data=ALERT_EVENT.validate_json(value), position=position))


def alert_text(value: bytes, partition: int, offset: int) -> str:
    """The `alert` frame of one alerts-topic message (the same text on every socket)."""
    return _alert(value, RateState(), partition, offset)


@dataclass(frozen=True, slots=True)
class Channels:
    metrics: Channel
    logs: Channel
    alerts: Channel
    agent_events: Channel  # connection events: the fleet sockets' online/offline

    @classmethod
    def for_prefix(cls, prefix: str) -> Channels:
        return cls(
            metrics=Channel("metrics", topics.METRICS.name(prefix), True, _metrics),
            logs=Channel("logs", topics.LOGS.name(prefix), False, _log),
            alerts=Channel("alerts", topics.ALERTS.name(prefix), False, _alert),
            agent_events=Channel("agent_events", topics.AGENT_EVENTS.name(prefix), False, None),
        )

    def by_topic(self) -> dict[str, Channel]:
        return {c.topic: c for c in (self.metrics, self.logs, self.alerts, self.agent_events)}

    def fleet(self) -> tuple[Channel, Channel, Channel]:
        """What a fleet socket reads, every partition of each."""
        return self.metrics, self.alerts, self.agent_events
