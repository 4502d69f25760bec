"""Whether the alert engine makes progress: a worker that holds partitions with samples waiting,
and has evaluated nothing for `stall_after_seconds`, reports itself unhealthy (its /health
answers 503 and `fleetpulse_alert_engine_stalled` is 1), so an operator or an orchestrator sees
what a silent monitoring system would otherwise hide."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class EngineHealth:
    def __init__(self, stall_after_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_seconds = stall_after_seconds
        self._clock = clock
        self.last_progress = clock()
        self.lag = 0  # samples waiting in the assigned partitions, at the last check
        self.assigned = 0
        self.first_sample_at: float | None = None  # wall clock (time.time) of the first batch
        self.counts = {"samples": 0, "batches": 0, "events": 0, "dropped_after_rebalance": 0, "restored": 0}
        self.registry = CollectorRegistry(auto_describe=True)
        self.samples = Counter(
            "fleetpulse_alert_engine_samples",
            "Samples evaluated (re-deliveries included)",
            registry=self.registry,
        )
        self.batches = Counter("fleetpulse_alert_engine_batches", "Batches committed", registry=self.registry)
        self.events = Counter(
            "fleetpulse_alert_engine_events", "Alert events published", registry=self.registry
        )
        self.dropped = Counter(
            "fleetpulse_alert_engine_dropped_after_rebalance",
            "Samples fetched, then revoked before evaluation (read again by their owner)",
            registry=self.registry,
        )
        self.restored = Counter(
            "fleetpulse_alert_engine_restored_servers",
            "Server states restored from the changelog on assignment",
            registry=self.registry,
        )
        self._stalled = Gauge(
            "fleetpulse_alert_engine_stalled",
            "1 while partitions are assigned, samples wait and none was evaluated for stall_after_seconds",
            registry=self.registry,
        )
        self._lag = Gauge(
            "fleetpulse_alert_engine_lag", "Samples waiting, assigned partitions", registry=self.registry
        )
        self._idle = Gauge(
            "fleetpulse_alert_engine_seconds_since_progress",
            "Seconds since the last committed batch (or since the backlog was empty)",
            registry=self.registry,
        )
        self._stalled.set_function(lambda: 1.0 if self.stalled else 0.0)
        self._lag.set_function(lambda: float(self.lag))
        self._idle.set_function(self.seconds_since_progress)

    def count(self, *, samples: int = 0, events: int = 0, dropped: int = 0, restored: int = 0) -> None:
        """One committed batch (`samples`, `events`), or records dropped, or states restored."""
        if samples or events:
            self.counts["batches"] += 1
            self.batches.inc()
        for name, value, counter in (
            ("samples", samples, self.samples),
            ("events", events, self.events),
            ("dropped_after_rebalance", dropped, self.dropped),
            ("restored", restored, self.restored),
        ):
            if value:
                self.counts[name] += value
                counter.inc(value)

    def fetched(self) -> None:
        """A batch is about to be evaluated (the first one's wall time is kept, for benchmarks)."""
        if self.first_sample_at is None:
            self.first_sample_at = time.time()

    def progressed(self) -> None:
        """A batch was committed, the backlog was found empty, or partitions were assigned."""
        self.last_progress = self._clock()

    def observe(self, assigned: int, lag: int) -> None:
        """The watchdog's periodic reading: partitions held and samples waiting in them."""
        self.assigned, self.lag = assigned, lag
        if assigned == 0 or lag == 0:
            self.progressed()  # nothing to do is not a stall

    def seconds_since_progress(self) -> float:
        return max(0.0, self._clock() - self.last_progress)

    @property
    def stalled(self) -> bool:
        return self.assigned > 0 and self.lag > 0 and self.seconds_since_progress() > self.stall_after_seconds

    def as_dict(self) -> dict[str, object]:
        return {
            "stalled": self.stalled,
            "assigned_partitions": self.assigned,
            "lag": self.lag,
            "seconds_since_progress": round(self.seconds_since_progress(), 3),
            "first_sample_at": self.first_sample_at,
            **self.counts,
        }
