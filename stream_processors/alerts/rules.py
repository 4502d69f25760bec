"""The rules a worker evaluates: read from the compacted ALERT_RULES topic, kept in memory.

Every worker reads the whole topic (no consumer group: each needs every rule) from the beginning,
and evaluates nothing until it has caught up with the end it saw at start, so a restart never
evaluates samples against a partial rule set. Later messages apply as they arrive: a rule
created, changed or deleted takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas.alerts import ALERT_RULE, AlertRule

from .evaluation import RuleSpec, spec_from_rule

log = logging.getLogger(__name__)

Applies = Callable[[uuid.UUID, uuid.UUID | None], bool]


@dataclass(frozen=True, slots=True)
class _Entry:
    spec: RuleSpec
    applies: Applies
    no_data_server: uuid.UUID | None  # for no-data rules: their one server, if they have one
    no_data_owner: uuid.UUID | None  # ... or the owner whose servers they all watch


class RuleRegistry:
    """The current rules, plus the last version of removed ones (to resolve their episodes)."""

    def __init__(self, max_rules_per_server: int) -> None:
        self.max_rules_per_server = max_rules_per_server
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._retired: dict[uuid.UUID, RuleSpec] = {}
        self.skipped = 0  # undecodable rule messages, for the logs and tests

    def __len__(self) -> int:
        return len(self._entries)

    def apply_message(self, key: bytes | None, value: bytes | None) -> None:
        """One message of the rules topic: a rule, or a tombstone (value None) deleting one."""
        if value is None:
            try:
                rule_id = uuid.UUID((key or b"").decode())
            except ValueError:
                log.warning("alert rules: a tombstone with an unusable key %r is ignored", key)
                self.skipped += 1
                return
            self.remove(rule_id)
            return
        try:
            rule = ALERT_RULE.validate_json(value)
        except ValidationError as exc:
            log.warning("alert rules: an undecodable rule (key %r) is ignored: %s", key, exc)
            self.skipped += 1
            return
        self.put(rule)

    def put(self, rule: AlertRule) -> None:
        if not rule.enabled:
            self.remove(rule.rule_id)
            return
        spec = spec_from_rule(rule)
        no_data = rule.metric == "no_data"
        self._entries[rule.rule_id] = _Entry(
            spec=spec,
            applies=rule.applies_to,
            no_data_server=rule.server_id if no_data else None,
            no_data_owner=rule.owner_id if no_data and rule.server_id is None else None,
        )
        self._retired.pop(rule.rule_id, None)

    def put_static(self, spec: RuleSpec) -> None:
        """A rule deployed as code: it applies to every server."""
        self._entries[spec.rule_id] = _Entry(spec, lambda _s, _o: True, None, None)

    def remove(self, rule_id: uuid.UUID) -> None:
        entry = self._entries.pop(rule_id, None)
        if entry is not None:
            self._retired[rule_id] = entry.spec

    def specs_for(self, server_id: uuid.UUID, owner_id: uuid.UUID | None) -> list[RuleSpec]:
        """The rules that evaluate this server, in id order, at most `max_rules_per_server`."""
        specs = [e.spec for e in self._entries.values() if e.applies(server_id, owner_id)]
        if len(specs) > self.max_rules_per_server:
            specs.sort(key=lambda s: s.rule_id)
            log.warning(
                "server %s has %d alert rules; only the first %d are evaluated",
                server_id,
                len(specs),
                self.max_rules_per_server,
            )
            specs = specs[: self.max_rules_per_server]
        return specs

    def retired(self, rule_id: uuid.UUID) -> RuleSpec | None:
        return self._retired.get(rule_id)

    def no_data_targets(self) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """(servers, owners) that some no-data rule watches."""
        servers = {e.no_data_server for e in self._entries.values() if e.no_data_server is not None}
        owners = {e.no_data_owner for e in self._entries.values() if e.no_data_owner is not None}
        return servers, owners

    def specs(self) -> Iterable[RuleSpec]:
        return [e.spec for e in self._entries.values()]


class RulesFeed:
    """Reads the rules topic into a registry. `start()` returns once caught up (or raises)."""

    def __init__(self, bootstrap: str, topic: str, registry: RuleRegistry, ready_timeout: float) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._registry = registry
        self._ready_timeout = ready_timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,  # every worker reads every rule
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            await asyncio.wait_for(self._catch_up(consumer), self._ready_timeout)
        except BaseException:
            await self.stop()
            raise
        self.ready.set()
        self._task = asyncio.create_task(self._follow(consumer), name="alert-rules-feed")

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        partitions: set[int] | None = None
        while not partitions:
            # The consumer knows only subscribed topics' partitions: read the cluster's metadata.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(self._topic)
            if not partitions:
                await asyncio.sleep(0.5)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not behind:
                break
            await self._poll(consumer)
        log.info("alert rules: %d rules loaded from %s", len(self._registry), self._topic)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=500, max_records=1000)
        for records in batches.values():
            for record in records:
                self._registry.apply_message(record.key, record.value)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await self._poll(consumer)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
