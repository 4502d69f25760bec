"""Settings of the stream processors (env prefix `FLEETPULSE_PROCESSORS_`).

Every limit of the persistence path is here, read once at the entry point and passed down.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import CommonSettings

from .alerts.settings import AlertSettings


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_PROCESSORS_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    # The alert engine and notifier (their own prefix: FLEETPULSE_PROCESSORS_ALERTS_).
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    app_id: str = "fleetpulse-processors"
    web_port: int = 6066  # faust's own web server: health at /health

    # Batching: a batch is written when it holds `batch_max_records` messages or when
    # `batch_within_seconds` have passed since its first message, whichever comes first.
    batch_max_records: int = Field(default=2000, ge=1, le=100_000)
    batch_within_seconds: float = Field(default=0.5, gt=0, le=60)
    # A database outage is retried forever (nothing is skipped), waiting between attempts with
    # exponential backoff and full jitter, capped at `db_retry_max_seconds`.
    db_retry_initial_seconds: float = Field(default=0.1, gt=0, le=60)
    db_retry_max_seconds: float = Field(default=5.0, gt=0, le=600)
    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=4, ge=1, le=100)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # How long a graceful stop waits for the batch in flight to commit before abandoning it
    # (abandoned: rolled back and not committed to Kafka, so it is read again).
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    # Kafka consumer group timing of the persistence consumer.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100, le=60_000)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1000, le=3_600_000)

    # Retention, applied with drop_chunks every `retention_interval_seconds`.
    retention_raw: timedelta = timedelta(days=7)
    retention_1m: timedelta = timedelta(days=90)
    retention_1h: timedelta = timedelta(days=730)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)

    # A connected server not heard from for `stale_after_seconds` is marked 'stale'.
    stale_after_seconds: float = Field(default=60.0, gt=0)
    stale_check_interval_seconds: float = Field(default=15.0, gt=0)

    @property
    def persist_group_id(self) -> str:
        """The consumer group of the persistence consumer (shared by every worker)."""
        return f"{self.common.topic_prefix}{self.app_id}-persist"
