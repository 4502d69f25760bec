"""Prometheus metrics of one API instance, in a registry of its own (two apps in one process, or
in one test session, never collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fleetpulse_api_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fleetpulse_api_request_seconds",
            "HTTP request latency by route template and method",
            ["method", "route"],
            registry=self.registry,
        )
        self.commands = Counter(
            "fleetpulse_api_commands",
            "remote commands by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.sockets = Gauge(
            "fleetpulse_api_live_sockets", "open live browser sockets", registry=self.registry
        )
        self.consumer_lag = Gauge(
            "fleetpulse_api_consumer_lag",
            "messages behind the end of a topic, per consumer of this process",
            ["consumer"],
            registry=self.registry,
        )

    def lag_from(self, consumer: str, read: Callable[[], float]) -> None:
        """Report `read()` as the lag of `consumer` each time metrics are scraped."""
        self.consumer_lag.labels(consumer).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
