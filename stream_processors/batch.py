"""Decoding one Kafka batch into the canonical payloads, with the positions it covers.

Pure and framework-free: the persistence consumer feeds it Kafka records, the tests feed it bytes.
A message that can never be decoded becomes a `DeadLetter`, so a poison message is set aside
(and counted) instead of blocking its partition forever. Decoding is pure and deterministic, so
whatever it raises for one record (not only pydantic's errors) is that record's fault: the
decoder checks at construction that a reference message of every topic decodes, so a decoder that
cannot decode anything fails at start instead of dead-lettering every message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from schemas import topics
from schemas.canonical import (
    AGENT_EVENT,
    COMMAND_RESULT,
    LOG_RECORD,
    METRIC_SAMPLE,
    AgentEvent,
    CommandResult,
    DeadLetter,
    LogRecord,
    MetricSample,
    utcnow,
)

from .errors import ProcessorError, describe
from .probe import reference

# The topics the persistence consumer reads, in the order their rows are written.
PERSISTED_TOPICS: tuple[topics.TopicSpec, ...] = (
    topics.METRICS,
    topics.LOGS,
    topics.AGENT_EVENTS,
    topics.COMMAND_RESULTS,
)

Payload = MetricSample | LogRecord | AgentEvent | CommandResult


class RecordLike(Protocol):
    """What the decoder needs of a Kafka record (aiokafka's ConsumerRecord has these)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message, with its record's key and raw value (what a dead letter carries: the
    payload may hold a value that cannot even be encoded again)."""

    position: Position
    payload: Payload
    key: bytes | None = None
    raw: bytes | None = None


@dataclass(slots=True)
class Batch:
    """Decoded messages in Kafka order, and dead letters for those that could not be decoded."""

    messages: list[Decoded] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Highest offset seen per (topic, partition), decoded or not: what the batch covers.
    highest: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.messages) + len(self.dead_letters)


def highest_offsets(positions: Iterable[Position]) -> dict[tuple[str, int], int]:
    highest: dict[tuple[str, int], int] = {}
    for p in positions:
        tp = (p.topic, p.partition)
        if highest.get(tp, -1) < p.offset:
            highest[tp] = p.offset
    return highest


class Decoder:
    """Decodes records of the persisted topics under one topic prefix."""

    def __init__(self, prefix: str) -> None:
        kinds: dict[str, tuple[TypeAdapter[Any], type[Payload]]] = {
            topics.METRICS.name(prefix): (METRIC_SAMPLE, MetricSample),
            topics.LOGS.name(prefix): (LOG_RECORD, LogRecord),
            topics.AGENT_EVENTS.name(prefix): (AGENT_EVENT, AgentEvent),
            topics.COMMAND_RESULTS.name(prefix): (COMMAND_RESULT, CommandResult),
        }
        now = utcnow()
        for topic, (adapter, kind) in kinds.items():
            # A decoder that cannot decode a valid message would dead-letter everything: refuse
            # to start instead (see probe.py).
            try:
                adapter.validate_json(reference(kind, now).to_bytes())
            except Exception as exc:
                raise ProcessorError(f"the decoder of {topic} refuses a valid message: {exc}") from exc
        self._adapters = {topic: adapter for topic, (adapter, _) in kinds.items()}

    @property
    def topic_names(self) -> list[str]:
        return list(self._adapters)

    def decode(self, records: Sequence[RecordLike]) -> Batch:
        batch = Batch()
        for record in records:
            position = Position(record.topic, record.partition, record.offset)
            tp = (record.topic, record.partition)
            if batch.highest.get(tp, -1) < record.offset:
                batch.highest[tp] = record.offset
            adapter = self._adapters.get(record.topic)
            try:
                if adapter is None:
                    raise ValueError(f"topic {record.topic!r} is not persisted")
                if record.value is None:
                    raise ValueError("the message has no value")
                payload: Payload = adapter.validate_json(record.value)
            except MemoryError:
                raise  # not the record's fault: the batch is read again
            except Exception as exc:  # noqa: BLE001 - pure decoding: any error is this record's
                reason = str(exc) if isinstance(exc, ValidationError | ValueError) else describe(exc)
                batch.dead_letters.append(dead_letter(position, record.key, record.value, reason))
                continue
            batch.messages.append(Decoded(position, payload, record.key, record.value))
        return batch


def dead_letter(position: Position, key: bytes | None, value: bytes | None, error: str) -> DeadLetter:
    return DeadLetter(
        topic=position.topic,
        partition=position.partition,
        offset=position.offset,
        key=None if key is None else key.decode("utf-8", "replace"),
        value=(value or b"").decode("utf-8", "replace"),
        error=error[:2000],
        time=utcnow(),
    )
