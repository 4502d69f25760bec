"""The alerts sink and notifier: reads ALERTS, records episodes, delivers to owners' channels.

For each batch: the episodes are upserted first (idempotent on episode id), then each event is
delivered to every matching channel. A delivery is claimed in the delivery log (one row per
channel and event id) before it is sent and is sent only while that row is not 'delivered', so a
restart or a replayed event never notifies a state change twice. The batch's offsets advance
only after both, so an event is never skipped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import faust
from pydantic import ValidationError

from schemas import topics
from schemas.alerts import ALERT_EVENT, AlertEvent, NotificationChannel
from schemas.canonical import utcnow

from . import store
from .delivery import deliver_with_retries
from .resources import AlertResources

log = logging.getLogger(__name__)

BATCH = 200
BATCH_WITHIN = 0.5


async def notify(resources: AlertResources, event: AlertEvent) -> None:
    channels = await resources.retrying("channels", lambda conn: store.channels_for(conn, event))
    await asyncio.gather(*(_deliver(resources, channel, event) for channel in channels))


async def _deliver(resources: AlertResources, channel: NotificationChannel, event: AlertEvent) -> None:
    pending = await resources.retrying(
        "claim delivery", lambda conn: store.claim_delivery(conn, channel.id, event)
    )
    if not pending:
        return  # delivered before (a replay, or a restart after the delivery)

    async def record(delivered: bool, final: bool, code: int | None, error: str | None) -> None:
        at = utcnow()
        await resources.retrying(
            "delivery log",
            lambda conn: store.record_attempt(
                conn,
                channel.id,
                event.event_id,
                delivered=delivered,
                final=final,
                status_code=code,
                error=error,
                at=at,
            ),
        )

    settings = resources.settings
    await deliver_with_retries(
        resources.http,
        channel,
        event,
        max_attempts=settings.notify_max_attempts,
        backoff=settings.notify_backoff_seconds,
        backoff_max=settings.notify_backoff_max_seconds,
        record=record,
    )


async def _store(conn: store.Conn, *, events: list[AlertEvent]) -> None:
    await store.upsert_episodes(conn, events)


def register_notifier(app: faust.App, resources: AlertResources, *, prefix: str) -> None:
    alerts_topic = app.topic(topics.ALERTS.name(prefix), key_serializer="raw", value_serializer="raw")

    @app.agent(alerts_topic, name="alerts-sink")
    async def sink(stream: Any) -> None:
        async for values in stream.take(BATCH, within=BATCH_WITHIN):
            await resources.wait_ready()  # the pool and HTTP client start after faust's recovery
            events: list[AlertEvent] = []
            for raw in values:
                try:
                    events.append(ALERT_EVENT.validate_json(raw))
                except ValidationError as exc:
                    log.warning("alerts: an undecodable alert event is skipped: %s", exc)
            await resources.retrying("store episodes", functools.partial(_store, events=events))
            if resources.settings.notify_enabled:
                for event in events:
                    await notify(resources, event)
