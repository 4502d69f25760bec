"""Every Kafka topic FleetPulse uses: one versioned name, its payload model and its key.

No other module spells a topic name. Messages about a server are keyed by the server id, so all of
one server's messages sit in one partition, in order; consumers that serve one server (the API's
live hub, an ingest process delivering commands) read that partition and filter by key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

DAY_MS = 24 * 3600 * 1000


class Cleanup(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's contract. `base` is versioned: a breaking payload change gets a new name."""

    base: str
    payload: str  # the model in schemas.canonical that its values hold
    key: str  # what its key is: "server_id", "rule_id", "key_id" or "none"
    cleanup: Cleanup = Cleanup.DELETE
    retention_ms: int | None = 7 * DAY_MS
    partitions: int | None = None  # None: the cluster-wide setting (12 by default)

    def name(self, prefix: str = "") -> str:
        """The topic's name on the broker; `prefix` isolates deployments or test runs."""
        return f"{prefix}{self.base}"


METRICS = TopicSpec("fleetpulse.metrics.v1", "MetricSample", "server_id")
LOGS = TopicSpec("fleetpulse.logs.v1", "LogRecord", "server_id")
AGENT_EVENTS = TopicSpec("fleetpulse.agent-events.v1", "AgentEvent", "server_id")
COMMANDS = TopicSpec("fleetpulse.commands.v1", "CommandRequest", "server_id", retention_ms=3600 * 1000)
COMMAND_RESULTS = TopicSpec("fleetpulse.command-results.v1", "CommandResult", "server_id")
ALERT_RULES = TopicSpec(
    "fleetpulse.alert-rules.v1", "AlertRule", "rule_id", cleanup=Cleanup.COMPACT, retention_ms=None
)
ALERTS = TopicSpec("fleetpulse.alerts.v1", "AlertEvent", "server_id", retention_ms=30 * DAY_MS)
KEY_REVOCATIONS = TopicSpec("fleetpulse.key-revocations.v1", "KeyRevocation", "key_id", retention_ms=DAY_MS)
DEAD_LETTERS = TopicSpec("fleetpulse.dead-letters.v1", "bytes", "none", retention_ms=30 * DAY_MS)

# The alert engine's changelog: each server's alert state (orjson of {rule id: state}; a tombstone
# when it has none), written once per batch. One topic per engine (consumer group), partitioned
# exactly like METRICS (a server's state sits in the partition number of its samples); created by
# the engine at start, so it is not in ALL_TOPICS. Compacted: the last state per server is kept.
ALERT_STATE = TopicSpec(
    "fleetpulse.alert-state.v1",
    "alert state (orjson)",
    "server_id",
    cleanup=Cleanup.COMPACT,
    retention_ms=None,
)


def alert_state_topic(prefix: str, engine_id: str) -> str:
    """The changelog topic of the alert engine named `engine_id` (its consumer group's name)."""
    return f"{ALERT_STATE.name(prefix)}.{engine_id}"


ALL_TOPICS: tuple[TopicSpec, ...] = (
    METRICS,
    LOGS,
    AGENT_EVENTS,
    COMMANDS,
    COMMAND_RESULTS,
    ALERT_RULES,
    ALERTS,
    KEY_REVOCATIONS,
    DEAD_LETTERS,
)


def server_key(server_id: uuid.UUID) -> bytes:
    """The message key of every per-server topic: the server id's canonical text form."""
    return str(server_id).encode()


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client and aiokafka)
    gives `key`. Readers that assign a server's partition by hand (no consumer group) use this.
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = int.from_bytes(data[i4 : i4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    idx = length & ~3
    if extra == 3:
        h ^= data[idx + 2] << 16
    if extra >= 2:
        h ^= data[idx + 1] << 8
    if extra >= 1:
        h ^= data[idx]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h
