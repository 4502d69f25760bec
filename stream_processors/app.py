"""The faust application factory: raw bytes on every topic, decoded through `schemas/`.

Long-lived resources are faust services, started with the app and stopped in reverse order:
the database pool first in, last out; then the persistence consumer and the timers that use it.
Other parts of the processors (the alert engine) register themselves with one call below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from .alerts.service import register_alerts
from .db import Database
from .faust_app import create_faust_app
from .persist import PersistenceService
from .retention import RetentionService
from .settings import ProcessorSettings


@dataclass(frozen=True, slots=True)
class Services:
    """The app's own services, for the parts that need them (and for tests)."""

    database: Database
    persistence: PersistenceService
    retention: RetentionService


def create_app(settings: ProcessorSettings) -> faust.App:
    app = create_faust_app(
        settings.common,
        app_id=settings.app_id,
        web_port=settings.web_port,
        session_timeout_seconds=settings.kafka_session_timeout_ms / 1000,
        heartbeat_interval_seconds=settings.kafka_heartbeat_interval_ms / 1000,
    )
    services = install_services(app, settings)
    alerting = register_alerts(app, settings.common, settings.alerts, engine_id=settings.app_id)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        # Persistence: 200 either way (the worker is alive); `failing`: batches keep failing and
        # are retried (the write path is broken or the database refuses), nothing is committed
        # past them. Alerts: 503 while the engine is stalled (docs/alerts.md), so that an
        # orchestrator restarts the worker.
        stats = services.persistence.stats
        healthy, alerts = alerting.health() if alerting is not None else (True, {"alerts": "disabled"})
        status = "stalled" if not healthy else ("failing" if stats.failing else "ok")
        body = {
            "status": status,
            "persistence": stats.as_dict(),
            "retention_runs": services.retention.runs,
            **alerts,
        }
        return web.json(body, status=200 if healthy else 503)

    return app


def install_services(app: faust.App, settings: ProcessorSettings) -> Services:
    """Register the database pool and the services using it, in start order."""
    database = Database(settings)
    services = Services(
        database=database,
        persistence=PersistenceService(settings, database),
        retention=RetentionService(settings, database),
    )
    # Registration order is start order; mode stops them in reverse, so the pool closes last.
    # faust's App.service accepts an instance as well as a class (App._prepare_subservice).
    app.service(database)  # type: ignore[arg-type]
    app.service(services.persistence)  # type: ignore[arg-type]
    app.service(services.retention)  # type: ignore[arg-type]
    return services
