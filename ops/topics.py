"""Create FleetPulse's Kafka topics, idempotently, with aiokafka's admin client."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS, TopicSpec

from .errors import OpsError

log = logging.getLogger(__name__)


def _config(spec: TopicSpec) -> dict[str, str]:
    config = {"cleanup.policy": str(spec.cleanup)}
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    return config


async def ensure_topics(
    bootstrap: str, prefix: str = "", partitions: int = 12, specs: tuple[TopicSpec, ...] = ALL_TOPICS
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created by this call."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=spec.name(prefix),
                num_partitions=spec.partitions or partitions,
                replication_factor=1,
                topic_configs=_config(spec),
            )
            for spec in specs
            if spec.name(prefix) not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created: list[str] = []
        for name, code, message in _errors(response):
            if code == 0:
                created.append(name)
            elif code == TopicAlreadyExistsError.errno:
                continue  # created concurrently by another process: fine
            else:
                raise OpsError(f"creating topic {name} failed: error {code} {message}")
        log.info("created topics: %s", ", ".join(created))
        return created
    except KafkaError as exc:
        raise OpsError(f"Kafka admin request failed: {exc}") from exc
    finally:
        await admin.close()


def _errors(response: object) -> list[tuple[str, int, str | None]]:
    rows = getattr(response, "topic_errors", [])
    out: list[tuple[str, int, str | None]] = []
    for row in rows:
        name, code = row[0], row[1]
        message = row[2] if len(row) > 2 else None
        out.append((name, code, message))
    return out
