"""The engine's read-evaluate-publish-write step, shared by the sample and the tick agents."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson

from alerting.registry import RuleRegistry
from schemas import topics
from schemas.alerts import AlertEvent, AlertRule
from schemas.canonical import MetricSample
from stream_processors.alerts.engine import Evaluator
from stream_processors.alerts.resources import AlertResources

OWNER = uuid.uuid4()
SERVER = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = topics.server_key(SERVER)


class Resources:
    """The two things the evaluator asks of its resources: rules and the server's owner."""

    def __init__(self) -> None:
        self.registry = RuleRegistry(max_rules_per_server=10)

    async def owner(self, server_id: uuid.UUID) -> uuid.UUID:
        return OWNER


def sample(seconds: float) -> MetricSample:
    t = T0 + timedelta(seconds=seconds)
    return MetricSample(server_id=SERVER, time=t, received_at=t, cpu_percent=5, memory_percent=5)


async def test_a_sample_arriving_while_a_tick_publishes_is_not_written_over() -> None:
    resources = Resources()
    resources.registry.put(
        AlertRule(
            rule_id=uuid.uuid4(),
            owner_id=OWNER,
            server_id=SERVER,
            name="silent",
            metric="no_data",
            threshold=0,
            interval_seconds=10,
            no_data_intervals=3,
            updated_at=T0,
        )
    )
    table: dict[bytes, bytes] = {}
    published: list[AlertEvent] = []
    gate = asyncio.Event()

    async def publish(key: bytes, events: list[AlertEvent]) -> None:
        published.extend(events)
        if any(e.state == "firing" for e in events):
            await gate.wait()  # Kafka is slow to acknowledge the no-data firing

    evaluator = Evaluator(cast(AlertResources, resources), table, publish)
    await evaluator.on_sample(sample(0))
    # The clock finds the server silent for 60 s and fires; while that event is in flight, the
    # server's next sample arrives.
    tick = asyncio.create_task(evaluator.on_tick(SERVER, T0 + timedelta(seconds=60)))
    await asyncio.sleep(0.05)
    data = asyncio.create_task(evaluator.on_sample(sample(61)))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(tick, data)
    # The sample saw the firing state: it resolves the episode, and the table keeps its update.
    assert [e.state for e in published] == ["firing", "resolved"]
    state: dict[str, Any] = next(iter(orjson.loads(table[KEY]).values()))
    assert state["subjects"][""]["phase"] == "ok"
