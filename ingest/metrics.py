"""The service's Prometheus metrics: one registry per app instance (two apps in one process, as in
the tests, never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.refusals = Counter(
            "fleetpulse_ingest_refusals",
            "Refused authentications, frames and sockets, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.frames = Counter(
            "fleetpulse_ingest_frames",
            "Accepted frames from agents, by type (legacy metrics are `legacy_metrics`).",
            ["type"],
            registry=self.registry,
        )
        self.acks = Counter(
            "fleetpulse_ingest_acks",
            "Acknowledgements sent after Kafka confirmed, by dialect.",
            ["dialect"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "fleetpulse_ingest_produce_seconds",
            "From handing a frame's records to the producer until Kafka confirmed all of them.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.paced = Counter(
            "fleetpulse_ingest_paced_frames",
            "Frames the receiver waited for: the agent was past its frame rate (backpressure).",
            registry=self.registry,
        )
        self.connections = Gauge(
            "fleetpulse_ingest_connections", "Authenticated agent sockets held.", registry=self.registry
        )
        self.commands = Counter(
            "fleetpulse_ingest_commands",
            "Commands handled, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
