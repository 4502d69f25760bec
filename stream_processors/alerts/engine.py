"""The live alert engine: rules evaluated inside the stream of metric samples (faust).

State per (server, rule) lives in the changelog-backed table `alert-state`, one entry per server
(key: the server key, value: orjson of {rule_id: state}), written in the agent that reads the
server's partition: a restart or a rebalance restores it from the changelog, so a pending alert
is neither lost nor fired twice. The alert events a sample causes are acknowledged by Kafka before
the state change is written, and faust flushes the changelog before it commits the sample's
offset (at-least-once); a sample processed twice yields the same events with the same ids, and
every reader of ALERTS is idempotent on them.

No-data rules need a clock: the leader sends a tick per watched server on an internal topic
co-partitioned with the metrics topic, and the tick is evaluated in the agent that owns the
server's state.

Both agents update the same entry of a server: `Evaluator` makes "read the state, evaluate,
publish, write the state" one step per worker (a lock), so one agent's update is never written
over by the other's, read before it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import faust
import orjson
from pydantic import ValidationError

from alerting.evaluation import State, evaluate_server, evaluate_silence
from schemas import topics
from schemas.alerts import AlertEvent
from schemas.canonical import METRIC_SAMPLE, MetricSample, utcnow

from . import store
from .resources import AlertResources

log = logging.getLogger(__name__)

STATE_TABLE = "alert-state"


def decode_states(raw: bytes | None) -> dict[str, State]:
    if not raw:
        return {}
    decoded: dict[str, State] = orjson.loads(raw)
    return decoded


Publish = Callable[[bytes, list[AlertEvent]], Awaitable[None]]


class Evaluator:
    """What the agents do with a sample or a tick, over the state table (bytes per server key)."""

    def __init__(
        self, resources: AlertResources, table: MutableMapping[bytes, bytes], publish: Publish
    ) -> None:
        self.resources = resources
        self.table = table
        self.publish = publish
        self._lock = asyncio.Lock()

    async def on_sample(self, sample: MetricSample) -> None:
        owner = await self.resources.owner(sample.server_id)
        specs = self.resources.registry.specs_for(sample.server_id, owner)
        key = topics.server_key(sample.server_id)
        async with self._lock:
            states = decode_states(self.table.get(key))
            if not specs and not states:
                return
            events = evaluate_server(specs, states, sample, owner, self.resources.registry.retired)
            await self.publish(key, events)
            self.table[key] = orjson.dumps(states) if states else b""

    async def on_tick(self, server_id: uuid.UUID, now: datetime) -> None:
        key = topics.server_key(server_id)
        if not self.table.get(key):
            return  # nothing seen from this server yet: nothing can be silent
        owner = await self.resources.owner(server_id)
        specs = [s for s in self.resources.registry.specs_for(server_id, owner) if s.is_no_data]
        async with self._lock:
            states = decode_states(self.table.get(key))
            events: list[AlertEvent] = []
            for spec in specs:
                state = states.get(str(spec.rule_id))
                if state is not None:
                    events.extend(evaluate_silence(spec, server_id, now, state, owner))
            if events:
                await self.publish(key, events)
                self.table[key] = orjson.dumps(states)


def register_engine(
    app: faust.App,
    resources: AlertResources,
    *,
    prefix: str,
    partitions: int,
    tick_seconds: float,
) -> None:
    """Add the evaluation agents, the state table and the no-data clock to `app`."""
    registry = resources.registry
    metrics_topic = app.topic(topics.METRICS.name(prefix), key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(topics.ALERTS.name(prefix), key_serializer="raw", value_serializer="raw")
    # Internal (named after the app, like faust's changelogs), never read by anyone else.
    ticks_topic = app.topic(
        f"{app.conf.id}-alert-ticks",
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
        retention=3600.0,
    )
    table = app.Table(
        STATE_TABLE,
        default=None,
        partitions=partitions,
        # bytes in, bytes out: faust picks the "raw" codec; the values are orjson we encode.
        key_type=bytes,
        value_type=bytes,
    )

    async def publish(key: bytes, events: list[AlertEvent]) -> None:
        """Make the events durable, before the state that records them is written.

        Not faust's default "attached" send: attached messages are published at the source
        offset's commit and silently discarded when the partition is revoked first, while the
        table's changelog write is not, so a rebalance would lose the event for good. Here an
        event is acknowledged by Kafka first; a crash before the state write replays the sample
        and emits the same event (same id) again, which every reader deduplicates."""
        pending = [await alerts_topic.send(key=key, value=e.to_bytes(), force=True) for e in events]
        for delivery in pending:
            await delivery

    evaluator = Evaluator(resources, table, publish)

    @app.agent(metrics_topic, name="alerts-evaluate")
    async def evaluate(stream: Any) -> None:
        async for event in stream.events():
            # Nothing is evaluated before the rules are loaded (the resources start after
            # faust's recovery, so the first events can arrive before them).
            await resources.wait_ready()
            try:
                sample = METRIC_SAMPLE.validate_json(event.value)
            except ValidationError:
                continue  # the persistence path dead-letters it; nothing to evaluate
            await evaluator.on_sample(sample)

    @app.agent(ticks_topic, name="alerts-ticks")
    async def ticks(stream: Any) -> None:
        async for event in stream.events():
            await resources.wait_ready()
            try:
                server_id = uuid.UUID(event.key.decode())
            except (AttributeError, ValueError):
                continue
            await evaluator.on_tick(server_id, utcnow())

    @app.timer(interval=tick_seconds, on_leader=True, name="alerts-no-data-clock")  # type: ignore[untyped-decorator]
    async def clock() -> None:
        servers, owners = registry.no_data_targets()
        if owners:
            owned = await resources.retrying(
                "servers of owners", lambda conn: store.servers_of(conn, sorted(owners))
            )
            servers |= {server for server, _ in owned}
        for server in sorted(servers):
            await ticks_topic.send(key=topics.server_key(server), value=b"{}")
