"""The API's Kafka producer: commands, key revocations, alert rules.

One idempotent producer per process (`acks=all`), started and stopped by the lifespan. A send
returns once the broker has the message durably; broker errors become `Unavailable` (a 503 the
client may retry), translated here and nowhere else.
"""

from __future__ import annotations

import logging
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas import topics
from schemas.canonical import CommandRequest, KeyRevocation

from .errors import Unavailable

log = logging.getLogger(__name__)


class Producer:
    def __init__(self, bootstrap: str, prefix: str, *, request_timeout_ms: int = 15_000) -> None:
        self._prefix = prefix
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=request_timeout_ms,
            linger_ms=0,
        )
        self._started = False

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise Unavailable(f"Kafka unreachable: {exc}") from exc
        self._started = True

    async def stop(self) -> None:
        if self._started:  # a second stop is a no-op
            self._started = False
            await self._producer.stop()

    async def send(self, spec: topics.TopicSpec, key: bytes | None, value: bytes | None) -> None:
        """Publish and wait for the broker's acknowledgement (all in-sync replicas)."""
        try:
            await self._producer.send_and_wait(spec.name(self._prefix), value=value, key=key)
        except KafkaError as exc:
            raise Unavailable(f"Kafka did not take the message, retry later: {exc}") from exc

    async def partitions_for(self, spec: topics.TopicSpec) -> set[int]:
        """The topic's partitions (a metadata request); Unavailable when it is missing."""
        try:
            return set(await self._producer.partitions_for(spec.name(self._prefix)))
        except KafkaError as exc:
            raise Unavailable(f"no metadata for topic {spec.name(self._prefix)}: {exc}") from exc

    async def send_command(self, request: CommandRequest) -> None:
        await self.send(topics.COMMANDS, topics.server_key(request.server_id), request.to_bytes())

    async def revoke_key(self, revocation: KeyRevocation) -> None:
        await self.send(topics.KEY_REVOCATIONS, str(revocation.key_id).encode(), revocation.to_bytes())

    async def publish_rule(self, rule_id: uuid.UUID, value: bytes | None) -> None:
        """A rule's latest state on the compacted rules topic; `None` (a tombstone) deletes it."""
        await self.send(topics.ALERT_RULES, str(rule_id).encode(), value)

    async def ping(self) -> None:
        try:
            await self._producer.client.force_metadata_update()
        except KafkaError as exc:
            raise Unavailable(f"Kafka unreachable: {exc}") from exc
        if not self._producer.client.cluster.brokers():
            raise Unavailable("Kafka unreachable: no broker known")
