"""Wiring: the alert services added to a faust app (which only hosts them: its web server, its
service lifecycle), and an app of their own.

`register_alerts` is what the processors' `create_app` calls (rules from the topic and the code
rules of the settings, engine and notifier in the main worker). `create_alert_app` builds a worker
that runs only alerting, to scale it apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
import mode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerting.code import load_deployments
from alerting.registry import RuleRegistry
from schemas import topics
from schemas.settings import CommonSettings

from ..faust_app import create_faust_app
from .consumer import AlertEngine
from .notifier import AlertSink
from .resources import AlertResources
from .settings import AlertSettings


@dataclass(frozen=True, slots=True)
class Alerting:
    """The alert services of one worker (for its health page, and for tests)."""

    resources: AlertResources
    engine: AlertEngine
    sink: AlertSink

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): unhealthy while the engine is stalled (docs/alerts.md)."""
        engine = self.engine.health
        return not engine.stalled, {"engine": engine.as_dict(), "sink_events": self.sink.events}


def register_alerts(
    app: faust.App, common: CommonSettings, settings: AlertSettings, *, engine_id: str
) -> Alerting | None:
    """Add alerting to `app`: the rules of the rules topic and the code rules of the settings,
    evaluated in the consumer group `<prefix><engine_id>-alerts`."""
    if not settings.enabled:
        return None
    registry = RuleRegistry(settings.max_rules_per_server)
    for spec in load_deployments(settings.code_deployments):
        registry.put_code(spec)
    resources = AlertResources(common, settings, registry, topics.ALERT_RULES.name(common.topic_prefix))

    class AlertResourcesService(mode.Service):
        """Owns the pool, the rules feed and the HTTP client for the app's lifetime."""

        async def on_start(self) -> None:
            await resources.start()

        async def on_stop(self) -> None:
            await resources.stop()

    alerting = Alerting(
        resources=resources,
        engine=AlertEngine(resources, engine_id=engine_id),
        sink=AlertSink(resources, engine_id=engine_id),
    )
    # Registration order is start order (stopped in reverse): the rules before the engine that
    # evaluates them, the engine and the sink stopped before the pool and the feed they use.
    app.service(AlertResourcesService)
    app.service(alerting.engine)  # type: ignore[arg-type]
    app.service(alerting.sink)  # type: ignore[arg-type]

    @app.page("/alerts/rules")
    async def loaded_rules(web: Any, request: Any) -> Any:
        """The rules this worker evaluates now (operators, and tests waiting for a change)."""
        return web.json(
            {"ready": resources.ready, "rules": sorted(str(spec.rule_id) for spec in registry.specs())}
        )

    @app.page("/alerts/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # The exposition type carries a charset, which aiohttp refuses as `content_type=`: as a
        # header it goes through unchanged.
        body = generate_latest(alerting.engine.health.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return alerting


def create_alert_app(
    common: CommonSettings,
    settings: AlertSettings,
    *,
    app_id: str,
    web_port: int,
) -> faust.App:
    """A worker that runs only alerting: the same conventions as the processors' app."""
    app = create_faust_app(
        common,
        app_id=app_id,
        web_port=web_port,
        session_timeout_seconds=settings.session_timeout_seconds,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
    )
    alerting = register_alerts(app, common, settings, engine_id=app_id)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        if alerting is None:
            return web.json({"status": "ok", "alerts": "disabled"})
        healthy, details = alerting.health()
        status = 200 if healthy else 503
        return web.json({"status": "ok" if healthy else "stalled", **details}, status=status)

    return app
