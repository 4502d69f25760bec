"""The live alert engine: an aiokafka consumer group over the metrics topic, with manual commits,
hosted as a mode service (like persistence, `stream_processors/persist.py`).

Why not a faust agent with a changelog-backed table any more: faust-streaming's recovery after a
rebalance dropped records it had fetched (two races were corrected in `faust_app.py`, and a third
stall remained, once in five CI runs), one changelog send per sample and one acknowledgement wait
per event made it the slowest stage, and nothing told the operator when it stopped. Here each
step is ours and is tested:

- **State** per server lives in memory, one dict per assigned partition, and is snapshotted to a
  compacted changelog topic of our own (`schemas.topics.alert_state_topic`), partitioned like the
  metrics topic: a server's state sits in the partition number of its samples.
- **Per batch** (what one `getmany` returns, at most `batch_max_records`): decode, look the
  owners up (one query for the servers not cached), evaluate every sample in order, then
  1. send the batch's alert events and wait for their acknowledgement (one wait),
  2. send each changed server's state once and wait for those acknowledgements (one wait),
  3. commit the batch's offsets.
  An event is durable before the state that records it, and a state before the offsets that
  skip its samples: a crash anywhere replays samples against a state that has not seen them
  (or has: samples older than a rule's state are ignored), so an event may be sent again, with
  the same id, and is never lost. Episode ids derive from the data, so no reader notifies twice.
- **Rebalance**: on revocation, the batch being written finishes (events, states, commit) and
  the rest is dropped: a batch fetched across a rebalance is discarded and those of its
  partitions still held are rewound to their last commit (aiokafka may have fetched them in the
  new generation already, past their commit; dropped without a rewind they would be skipped, the
  very stall this engine replaces). On
  assignment, every partition's state is restored from the changelog before any of its samples
  is evaluated. A partition this worker held and gets back is not re-read when the changelog's
  end offset is still the one after its own last write (nobody else wrote there since).
- **Failure** of a batch (Kafka refusing a send, an unexpected error): the partitions of the
  batch are restored from the changelog and rewound to their last commit, so the batch is
  evaluated again from the durable state, never from a half-applied one.
- **No-data clock**: every `tick_seconds` the loop evaluates silence for the servers it holds
  (only in partitions that are caught up), in the same task as the batches, so a tick and a
  batch never interleave.
- **Health**: a watchdog compares the assigned partitions' end offsets with what was committed;
  samples waiting and no progress for `stall_after_seconds` is a stall (`health.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import mode
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalStateError, TopicAlreadyExistsError
from pydantic import ValidationError

from schemas import topics
from schemas.canonical import METRIC_SAMPLE, MetricSample, utcnow

from .engine import ServerStates, Step, evaluate_batch, evaluate_tick
from .errors import AlertError
from .health import EngineHealth
from .resources import AlertResources

log = logging.getLogger(__name__)

# Changelog topic settings: compacted, rolled often so that compaction keeps a restore short.
_STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.2",
    "delete.retention.ms": str(24 * 3600 * 1000),
}


class _Stale(Exception):
    """A revocation came while a batch was fetched or prepared: it was dropped and rewound."""


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: AlertEngine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._engine.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._engine.assigned({tp.partition for tp in assigned})


class AlertEngine(mode.Service):
    """Evaluates the metrics topic's samples in a consumer group named after `engine_id`."""

    def __init__(self, resources: AlertResources, *, engine_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resources = resources
        self._common = resources.common
        self._settings = resources.settings
        prefix = self._common.topic_prefix
        self.engine_id = engine_id
        self.group_id = f"{prefix}{engine_id}-alerts"
        self.metrics_topic = topics.METRICS.name(prefix)
        self.alerts_topic = topics.ALERTS.name(prefix)
        self.state_topic = topics.alert_state_topic(prefix, engine_id)
        self.health = EngineHealth(self._settings.stall_after_seconds)
        # partition -> server key -> the server's states; only partitions restored and held.
        self._states: dict[int, dict[bytes, ServerStates]] = {}
        # Partitions revoked from us: their states, and the changelog end offset after our last
        # write there (reused when we get the partition back and nobody wrote since).
        self._parked: dict[int, tuple[dict[bytes, ServerStates], int]] = {}
        self._state_end: dict[int, int] = {}  # the changelog end offset after our last write
        self._next: dict[int, int] = {}  # the next metrics offset to evaluate (= last commit)
        self._lock = asyncio.Lock()  # held from a batch's evaluation to its commit
        self._epoch = 0  # incremented by every revocation: records fetched before it are stale
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loops: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    async def on_start(self) -> None:
        s, common = self._settings, self._common
        # Rules first: nothing is evaluated against a partial rule set (the resources service
        # starts before this one and returns once the rules topic is read to its end).
        await self._resources.wait_ready()
        await self._ensure_state_topic()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=common.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            client_id=f"{self.engine_id}-alerts",
        )
        await self._producer.start()
        self._restorer = AIOKafkaConsumer(
            bootstrap_servers=common.kafka_bootstrap,
            group_id=None,  # reads whole changelog partitions by hand
            enable_auto_commit=False,
            client_id=f"{self.engine_id}-alerts-restore",
        )
        await self._restorer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=common.kafka_bootstrap,
            group_id=self.group_id,
            client_id=f"{self.engine_id}-alerts",
            enable_auto_commit=False,  # offsets are committed by hand, after events and states
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_seconds * 1000),
            max_poll_interval_ms=int(s.max_poll_interval_seconds * 1000),
            max_partition_fetch_bytes=s.fetch_max_partition_bytes,
        )
        self._consumer.subscribe([self.metrics_topic], listener=_Rebalances(self))
        await self._consumer.start()
        self._loops = [
            asyncio.create_task(self._run(), name="alert-engine"),
            asyncio.create_task(self._watch(), name="alert-engine-watchdog"),
        ]

    async def on_stop(self) -> None:
        # Shutdown order: let the batch in flight finish (events, states, commit), then leave the
        # group (revocation: nothing is left to write), then the changelog reader and producer.
        self._stopping.set()
        if self._loops:
            runner, watchdog = self._loops
            watchdog.cancel()
            done, _ = await asyncio.wait({runner}, timeout=self._settings.shutdown_timeout_seconds)
            if not done:
                runner.cancel()  # uncommitted: the partitions' next owner evaluates it again
            await asyncio.gather(*self._loops, return_exceptions=True)
            self._loops = []
        for client in (self._consumer, self._restorer, self._producer):
            if client is not None:
                await client.stop()
        self._consumer = self._restorer = self._producer = None

    async def _ensure_state_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._common.kafka_bootstrap)
        await admin.start()
        try:
            described = {t["topic"]: t for t in await admin.describe_topics([self.metrics_topic])}
            metrics = described.get(self.metrics_topic)
            if metrics is None or metrics.get("error_code") or not metrics.get("partitions"):
                raise AlertError(f"topic {self.metrics_topic} does not exist: run `fleetpulse-ops topics`")
            partitions = len(metrics["partitions"])
            if self.state_topic not in set(await admin.list_topics()):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(self.state_topic, partitions, 1, topic_configs=_STATE_TOPIC_CONFIG)]
                    )
            else:
                (state,) = await admin.describe_topics([self.state_topic])
                if len(state["partitions"]) != partitions:
                    raise AlertError(
                        f"{self.state_topic} has {len(state['partitions'])} partitions and "
                        f"{self.metrics_topic} {partitions}: they must match"
                    )
        finally:
            await admin.close()

    # --- rebalances --------------------------------------------------------------------------

    async def revoked(self, partitions: set[int]) -> None:
        self._epoch += 1
        async with self._lock:
            # The batch being written is committed; nothing of these partitions is written any
            # more. Their states are kept aside, for the case we get them back unchanged.
            for p in partitions:
                states = self._states.pop(p, None)
                if states is not None and p in self._state_end:
                    self._parked[p] = (states, self._state_end[p])
                self._next.pop(p, None)
            log.info("alert engine: partitions revoked: %s", sorted(partitions))

    async def assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            await self._restore(partitions)
            self.health.progressed()
            log.info("alert engine: partitions assigned: %s", sorted(partitions))

    async def _restore(self, partitions: Iterable[int], *, force: bool = False) -> None:
        """Read these partitions' states from the changelog (unless ours are still current), and
        the next offset to evaluate in each from the group's commits."""
        restorer, consumer = self._restorer, self._consumer
        if restorer is None or consumer is None:
            return
        tps = {p: TopicPartition(self.state_topic, p) for p in partitions}
        if not tps:
            return
        ends = await restorer.end_offsets(list(tps.values()))
        reading: list[TopicPartition] = []
        for p, tp in tps.items():
            parked = self._parked.pop(p, None)
            if not force and parked is not None and parked[1] == ends[tp]:
                self._states[p] = parked[0]  # nobody wrote there since our last write
            else:
                self._states[p] = {}
                if ends[tp] > 0:
                    reading.append(tp)
            self._state_end[p] = ends[tp]
        if reading:
            restorer.assign(reading)
            await restorer.seek_to_beginning(*reading)
            restored = 0
            while any([await restorer.position(tp) < ends[tp] for tp in reading]):
                fetched = await restorer.getmany(timeout_ms=500, max_records=10_000)
                for tp, records in fetched.items():
                    states = self._states[tp.partition]
                    for record in records:
                        if record.offset >= ends[tp] or record.key is None:
                            continue
                        if record.value is None:
                            states.pop(record.key, None)
                        else:
                            states[record.key] = orjson.loads(record.value)
                            restored += 1
            restorer.unsubscribe()
            self.health.count(restored=restored)
        for p in tps:
            tp = TopicPartition(self.metrics_topic, p)
            committed = await consumer.committed(tp)
            if committed is None:
                committed = (await consumer.beginning_offsets([tp]))[tp]
            self._next[p] = committed

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self._settings.tick_seconds
        while not self._stopping.is_set():
            batch: dict[TopicPartition, list[Any]] = {}
            try:
                epoch = self._epoch
                batch = await consumer.getmany(
                    timeout_ms=self._settings.poll_timeout_ms, max_records=self._settings.batch_max_records
                )
                if batch:
                    await self._handle(batch, epoch)
                if loop.time() >= next_tick:
                    next_tick = loop.time() + self._settings.tick_seconds
                    await self._tick()
            except asyncio.CancelledError:
                raise
            except _Stale:
                self.health.count(dropped=sum(len(r) for r in batch.values()))
            except Exception:
                # Never let an error end the loop, nor go on from a half-applied state: the
                # batch's partitions go back to their durable state and last commit.
                log.exception("alert engine: batch failed; its partitions are restored and rewound")
                await self._recover({tp.partition for tp in batch})

    async def _handle(self, batch: dict[TopicPartition, list[Any]], epoch: int) -> None:
        self.health.fetched()
        samples: list[tuple[int, bytes, MetricSample]] = []
        highest: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            highest[tp] = records[-1].offset
            for record in records:
                try:
                    sample = METRIC_SAMPLE.validate_json(record.value)
                except ValidationError:
                    continue  # the persistence path dead-letters it; nothing to evaluate
                samples.append((tp.partition, topics.server_key(sample.server_id), sample))
        # Owners before the lock (an outage retries here, and must not hold up a rebalance).
        await self._resources.prefetch_owners({s.server_id for _, _, s in samples})
        async with self._lock:
            if epoch != self._epoch:
                self._rewind(batch)
                raise _Stale
            missing = {tp.partition for tp in batch} - self._states.keys()
            if missing:
                await self._restore(missing)  # assigned, and the restore at assignment failed
            step = evaluate_batch(
                self._resources.registry, self._states, samples, self._resources.cached_owner
            )
            await self._write(step)
            offsets = {tp: offset + 1 for tp, offset in highest.items()}
            try:
                # Kafka commit AFTER the events and the states are acknowledged: a crash before
                # this line evaluates the batch again from the written state, same event ids.
                await self._consumer_or_fail().commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced meanwhile: the partitions' next owner re-reads these
                # samples against the states written above. Nothing is lost.
                log.warning("alert engine: offset commit refused after a rebalance (%s)", exc)
            for tp, offset in offsets.items():
                self._next[tp.partition] = offset
            self.health.count(samples=len(samples), events=len(step.events))
            self.health.progressed()

    def _rewind(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """A batch fetched across a rebalance is dropped: those of its partitions we hold now
        may have been fetched in the new generation already (positions past them), so they go
        back to their last commit, or their records would never be evaluated."""
        consumer = self._consumer_or_fail()
        held = consumer.assignment()
        for tp in batch:
            if tp in held and tp.partition in self._next:
                consumer.seek(tp, self._next[tp.partition])

    async def _write(self, step: Step) -> None:
        """The step's events, then its states: each group acknowledged by Kafka with one wait."""
        producer = self._producer
        assert producer is not None
        if step.events:
            sent = [
                await producer.send(self.alerts_topic, e.to_bytes(), key=topics.server_key(e.server_id))
                for e in step.events
            ]
            # Every event acknowledged (acks=all) before any state that records it is written.
            await asyncio.gather(*sent)
        if step.changed:
            keyed = [
                (p, await producer.send(self.state_topic, orjson.dumps(s) if s else None, key=k, partition=p))
                for (p, k), s in step.changed.items()
            ]
            for p, future in keyed:
                metadata = await future
                self._state_end[p] = max(self._state_end.get(p, 0), metadata.offset + 1)

    async def _tick(self) -> None:
        consumer = self._consumer_or_fail()
        caught_up = []
        for p in list(self._states):
            high = consumer.highwater(TopicPartition(self.metrics_topic, p))
            if high is not None and self._next.get(p, -1) >= high:
                caught_up.append(p)
        if not caught_up:
            return
        registry = self._resources.registry
        async with self._lock:
            step = evaluate_tick(registry, self._states, caught_up, self._resources.cached_owner, utcnow())
            if step.events or step.changed:
                await self._write(step)
                self.health.count(events=len(step.events))

    async def _recover(self, partitions: set[int]) -> None:
        with contextlib.suppress(_StopRequested):
            await self._sleep(1.0)
        async with self._lock:
            held = partitions & self._states.keys()
            try:
                await self._restore(held, force=True)
                consumer = self._consumer_or_fail()
                for p in held:
                    consumer.seek(TopicPartition(self.metrics_topic, p), self._next[p])
            except Exception:
                # Still failing (Kafka away): forget the partitions' states; the next batch of
                # theirs restores them first.
                log.exception("alert engine: recovery failed; will restore before the next batch")
                for p in held:
                    self._states.pop(p, None)
                    self._parked.pop(p, None)

    async def _watch(self) -> None:
        """Every few seconds: partitions held and samples waiting in them (the stall check)."""
        interval = max(0.5, min(5.0, self._settings.stall_after_seconds / 3))
        while True:
            await asyncio.sleep(interval)
            consumer = self._consumer
            if consumer is None:
                continue
            assigned = [tp for tp in consumer.assignment() if tp.topic == self.metrics_topic]
            try:
                ends = await consumer.end_offsets(assigned) if assigned else {}
            except Exception as exc:  # noqa: BLE001 - a rebalance or the broker away: skip this reading
                log.debug("alert engine watchdog: no end offsets (%s)", exc)
                continue
            # A partition not restored yet counts from 0: held and never evaluated is a stall too.
            lag = sum(max(0, end - self._next.get(tp.partition, 0)) for tp, end in ends.items())
            self.health.observe(len(assigned), lag)
            if self.health.stalled:
                log.error(
                    "alert engine stalled: %d samples waiting in %d partitions, nothing evaluated for %.0fs",
                    lag,
                    len(assigned),
                    self.health.seconds_since_progress(),
                )

    def _consumer_or_fail(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise AlertError("the alert engine is not started")
        return self._consumer

    async def _sleep(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return
        raise _StopRequested

    def server_states(self, server_id: uuid.UUID) -> ServerStates | None:
        """A held server's state (operators and tests)."""
        key = topics.server_key(server_id)
        for states in self._states.values():
            if key in states:
                return states[key]
        return None


class _StopRequested(Exception):
    pass
