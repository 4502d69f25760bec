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
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas.alerts import ALERT_RULE, AlertRule

from .evaluation import RuleSpec, spec_from_rule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    spec: RuleSpec
    server_id: uuid.UUID | None  # a rule of one server
    owner_id: uuid.UUID | None  # ... or of every server of this owner (None for code rules)

    @property
    def scope(self) -> tuple[str, uuid.UUID | None]:
        if self.server_id is not None:
            return ("server", self.server_id)
        if self.owner_id is not None:
            return ("owner", self.owner_id)
        return ("all", None)


class RuleRegistry:
    """The current rules, indexed by the server or owner they watch (a sample's lookup costs
    its own rules, not the whole rule set), plus the last version of removed rules (to resolve
    their open episodes)."""

    def __init__(self, max_rules_per_server: int) -> None:
        self.max_rules_per_server = max_rules_per_server
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._scopes: dict[tuple[str, uuid.UUID | None], dict[uuid.UUID, RuleSpec]] = {}
        self._retired: dict[uuid.UUID, RuleSpec] = {}
        self._warned: set[uuid.UUID] = set()
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
        owner = rule.owner_id if rule.server_id is None else None
        self._add(_Entry(spec_from_rule(rule), rule.server_id, owner))

    def put_static(self, spec: RuleSpec) -> None:
        """A rule deployed as code: it applies to every server."""
        self._add(_Entry(spec, None, None))

    def _add(self, entry: _Entry) -> None:
        rule_id = entry.spec.rule_id
        old = self._entries.get(rule_id)
        if old is not None:
            self._scopes.get(old.scope, {}).pop(rule_id, None)
        self._entries[rule_id] = entry
        self._scopes.setdefault(entry.scope, {})[rule_id] = entry.spec
        self._retired.pop(rule_id, None)

    def remove(self, rule_id: uuid.UUID) -> None:
        entry = self._entries.pop(rule_id, None)
        if entry is not None:
            self._scopes.get(entry.scope, {}).pop(rule_id, None)
            self._retired[rule_id] = entry.spec

    def specs_for(self, server_id: uuid.UUID, owner_id: uuid.UUID | None) -> list[RuleSpec]:
        """The rules that evaluate this server, at most `max_rules_per_server` (by id order)."""
        specs = list(self._scopes.get(("server", server_id), {}).values())
        if owner_id is not None:
            specs.extend(self._scopes.get(("owner", owner_id), {}).values())
        specs.extend(self._scopes.get(("all", None), {}).values())
        if len(specs) > self.max_rules_per_server:
            specs.sort(key=lambda s: s.rule_id)
            if server_id not in self._warned:
                self._warned.add(server_id)
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
        servers: set[uuid.UUID] = set()
        owners: set[uuid.UUID] = set()
        for entry in self._entries.values():
            if entry.spec.is_no_data:
                if entry.server_id is not None:
                    servers.add(entry.server_id)
                elif entry.owner_id is not None:
                    owners.add(entry.owner_id)
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
