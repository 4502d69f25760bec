"""Wiring: the alert processors added to a faust app, and apps of their own.

`register_alerts` is what the processors' `create_app` calls (rules from the topic and the code
rules of the settings, engine and notifier in the main worker). `create_alert_app` builds a worker
that runs only alerting, to scale it apart.
"""

from __future__ import annotations

from typing import Any

import faust
import mode

from alerting.code import load_deployments
from alerting.registry import RuleRegistry
from schemas import topics
from schemas.settings import CommonSettings

from ..faust_app import create_faust_app
from .engine import register_engine
from .notifier import register_notifier
from .resources import AlertResources
from .settings import AlertSettings


def register_alerts(app: faust.App, common: CommonSettings, settings: AlertSettings) -> AlertResources | None:
    """Add alerting to `app`: the rules of the rules topic and the code rules of the settings."""
    if not settings.enabled:
        return None
    registry = RuleRegistry(settings.max_rules_per_server)
    for spec in load_deployments(settings.code_deployments):
        registry.put_code(spec)
    rules_topic = topics.ALERT_RULES.name(common.topic_prefix)
    resources = AlertResources(common, settings, registry, rules_topic)

    class AlertResourcesService(mode.Service):
        """Owns the pool, the rules feed and the HTTP client for the app's lifetime."""

        async def on_start(self) -> None:
            await resources.start()

        async def on_stop(self) -> None:
            await resources.stop()

    app.service(AlertResourcesService)

    @app.page("/alerts/rules")
    async def loaded_rules(web: Any, request: Any) -> Any:
        """The rules this worker evaluates now (operators, and tests waiting for a change)."""
        return web.json(
            {"ready": resources.ready, "rules": sorted(str(spec.rule_id) for spec in registry.specs())}
        )

    register_engine(
        app,
        resources,
        prefix=common.topic_prefix,
        partitions=common.topic_partitions,
        tick_seconds=settings.tick_seconds,
    )
    register_notifier(app, resources, prefix=common.topic_prefix)
    return resources


def create_alert_app(
    common: CommonSettings,
    settings: AlertSettings,
    *,
    app_id: str,
    web_port: int,
) -> faust.App:
    """A faust worker that runs only alerting: the same conventions as the processors' app."""
    app = create_faust_app(
        common,
        app_id=app_id,
        web_port=web_port,
        session_timeout_seconds=settings.session_timeout_seconds,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
    )

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    register_alerts(app, common, settings)
    return app
