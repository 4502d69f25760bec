"""Settings of the alert engine and notifier (env prefix `FLEETPULSE_PROCESSORS_ALERTS_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerting.code import Deployment


class AlertSettings(BaseSettings):
    """Read once at the entry point; `code_deployments` parses `code_rules` (a bad entry stops
    the worker at start, naming it)."""

    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_PROCESSORS_ALERTS_", extra="ignore")

    enabled: bool = True
    # The no-data clock: how often the leader checks every server with a no-data rule.
    tick_seconds: float = Field(default=5.0, gt=0, le=3600)
    # How long a server -> owner lookup is trusted (owner-wide rules need the owner).
    owners_ttl_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # A worker evaluates nothing until it has read the rules topic to its end, at most this long.
    rules_ready_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Rules evaluated per server; rules beyond the limit (by id order) are skipped and logged.
    max_rules_per_server: int = Field(default=200, ge=1, le=10_000)
    # Notifier: attempts per delivery, exponential backoff between them, and the HTTP timeout.
    notify_max_attempts: int = Field(default=5, ge=1, le=100)
    notify_backoff_seconds: float = Field(default=0.5, ge=0, le=600)
    notify_backoff_max_seconds: float = Field(default=30.0, ge=0, le=3600)
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    notify_enabled: bool = True
    db_pool_max_size: int = Field(default=4, ge=1, le=100)
    # Rules deployed as code: comma-separated `<module>@<owner user id>`, each module's rules
    # evaluated on that owner's servers only (docs/alerts.md: deploying and rolling back).
    code_rules: str = ""
    # The engine's consumer group: a worker that dies without leaving the group keeps its
    # partitions (and their alerts) until the session times out.
    session_timeout_seconds: float = Field(default=10.0, ge=1, le=300)
    heartbeat_interval_seconds: float = Field(default=3.0, gt=0, le=60)
    max_poll_interval_seconds: float = Field(default=300.0, ge=1, le=3600)
    # A batch is what one fetch returns, at most this many samples; the fetch waits at most
    # `poll_timeout_ms` when nothing is there (the no-data clock runs between fetches).
    batch_max_records: int = Field(default=5000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=200, ge=1, le=10_000)
    fetch_max_partition_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # A worker holding partitions with samples waiting that evaluates nothing for this long
    # reports itself unhealthy (/health answers 503, fleetpulse_alert_engine_stalled is 1).
    stall_after_seconds: float = Field(default=60.0, gt=0, le=3600)
    # How long a graceful stop waits for the batch in flight (then it is re-read by the next owner).
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    # The notifier's batches (alert events read from the alerts topic).
    sink_batch_max_records: int = Field(default=500, ge=1, le=10_000)
    # The alerting-only worker's garbage collector (`runtime.py`): what is loaded at start is
    # frozen and the first generation is collected after this many net allocations; 0 keeps
    # Python's defaults (700).
    gc_gen0_threshold: int = Field(default=50_000, ge=0, le=10_000_000)
    # The alerting-only worker (`python -m stream_processors.alerts`) and rules-as-code workers.
    worker_app_id: str = "fleetpulse-alerts"
    worker_web_port: int = Field(default=6067, ge=0, le=65535)

    @property
    def code_deployments(self) -> list[Deployment]:
        return [Deployment.parse(part) for part in self.code_rules.split(",") if part.strip()]
