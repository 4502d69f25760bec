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

import mode
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import ValidationError

from schemas import topics
from schemas.alerts import ALERT_EVENT, AlertEvent, NotificationChannel
from schemas.canonical import utcnow

from . import store
from .delivery import deliver_with_retries
from .resources import AlertResources

log = logging.getLogger(__name__)


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


class AlertSink(mode.Service):
    """Reads ALERTS in a consumer group of its own, with manual commits: per batch, the episodes
    are upserted, then every event is delivered, then the offsets are committed. A failure (the
    database away beyond the retries' patience is not one: they retry) rewinds the batch."""

    def __init__(self, resources: AlertResources, *, engine_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resources = resources
        prefix = resources.common.topic_prefix
        self._topic = topics.ALERTS.name(prefix)
        self.group_id = f"{prefix}{engine_id}-alerts-sink"
        self._client_id = f"{engine_id}-alerts-sink"
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.events = 0

    async def on_start(self) -> None:
        await self._resources.wait_ready()
        s = self._resources.settings
        self._consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._resources.common.kafka_bootstrap,
            group_id=self.group_id,
            client_id=self._client_id,
            enable_auto_commit=False,  # committed by hand, after the episodes and the deliveries
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_seconds * 1000),
            max_poll_interval_ms=int(s.max_poll_interval_seconds * 1000),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="alerts-sink")

    async def on_stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait(
                {self._task}, timeout=self._resources.settings.shutdown_timeout_seconds
            )
            if not done:
                self._task.cancel()  # uncommitted: read again, and deduplicated, by the next owner
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        resources = self._resources
        while not self._stopping.is_set():
            batch: dict[TopicPartition, list[Any]] = {}
            try:
                batch = await consumer.getmany(
                    timeout_ms=500, max_records=resources.settings.sink_batch_max_records
                )
                if not batch:
                    continue
                events: list[AlertEvent] = []
                for records in batch.values():
                    for record in records:
                        try:
                            events.append(ALERT_EVENT.validate_json(record.value))
                        except ValidationError as exc:
                            log.warning("alerts: an undecodable alert event is skipped: %s", exc)
                await resources.retrying("store episodes", functools.partial(_store, events=events))
                if resources.settings.notify_enabled:
                    for event in events:
                        await notify(resources, event)
                # Committed AFTER the episodes are stored and every delivery is settled (sent,
                # or failed for good and logged): a crash before this line replays the batch,
                # which the episode upsert and the delivery claims make harmless.
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
                self.events += len(events)
            except asyncio.CancelledError:
                raise
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("alerts sink: commit refused after a rebalance (%s); the batch is re-read", exc)
            except Exception:
                log.exception("alerts sink: batch failed; rewinding it")
                for tp in batch:
                    committed = await consumer.committed(tp)
                    if committed is not None:
                        consumer.seek(tp, committed)
                    else:
                        await consumer.seek_to_beginning(tp)
                await asyncio.sleep(1.0)


async def _store(conn: store.Conn, *, events: list[AlertEvent]) -> None:
    await store.upsert_episodes(conn, events)
