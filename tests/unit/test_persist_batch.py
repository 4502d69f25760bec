"""The persistence path with fakes: decoding, dead letters, backoff, and the order of the
database commit and the Kafka commit."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import topics
from schemas.canonical import LogRecord, MetricSample, log_entry_id
from schemas.settings import CommonSettings, Environment
from stream_processors import db, persist, probe
from stream_processors.batch import Decoder
from stream_processors.errors import DatabaseRejected, DatabaseUnavailable
from stream_processors.retention import retention_plan
from stream_processors.settings import ProcessorSettings

PREFIX = "unit."
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def metric(offset: int, partition: int = 0, server: uuid.UUID | None = None) -> Record:
    sample = MetricSample(
        server_id=server or uuid.uuid4(),
        time=T0 + timedelta(seconds=offset),
        received_at=T0,
        cpu_percent=1.5,
        memory_percent=2.5,
    )
    return Record(topics.METRICS.name(PREFIX), partition, offset, b"k", sample.to_bytes())


def log(offset: int, message: str) -> Record:
    server = uuid.uuid4()
    entry = LogRecord(
        server_id=server,
        entry_id=log_entry_id(server, T0, None, message, 0),
        time=T0,
        received_at=T0,
        level="INFO",
        message=message,
    )
    return Record(topics.LOGS.name(PREFIX), 1, offset, b"k", entry.to_bytes())


def settings(**values: Any) -> ProcessorSettings:
    common = CommonSettings(
        env=Environment.TEST, topic_prefix=PREFIX, key_pepper="p" * 40, jwt_secret="j" * 40
    )
    return ProcessorSettings(
        common=common, db_retry_initial_seconds=0.001, db_retry_max_seconds=0.004, **values
    )


def test_decoder_sorts_messages_from_dead_letters_and_covers_every_offset() -> None:
    decoder = Decoder(PREFIX)
    batch = decoder.decode(
        [
            metric(10),
            Record(topics.METRICS.name(PREFIX), 0, 11, b"k", b"{broken"),
            Record(topics.METRICS.name(PREFIX), 0, 12, b"k", None),
            metric(3, partition=2),
            Record("other.topic", 0, 5, None, b"{}"),
            log(7, "hello"),
        ]
    )
    assert [m.position.offset for m in batch.messages] == [10, 3, 7]
    assert isinstance(batch.messages[2].payload, LogRecord)
    assert [d.offset for d in batch.dead_letters] == [11, 12, 5]
    assert batch.dead_letters[0].value == "{broken" and batch.dead_letters[0].key == "k"
    assert "not persisted" in batch.dead_letters[2].error
    assert batch.highest == {
        (topics.METRICS.name(PREFIX), 0): 12,
        (topics.METRICS.name(PREFIX), 2): 3,
        ("other.topic", 0): 5,
        (topics.LOGS.name(PREFIX), 1): 7,
    }
    assert len(batch) == 6


def test_backoff_grows_is_capped_and_resets() -> None:
    backoff = persist.Backoff(0.1, 1.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_retention_settings_default_to_the_issue_and_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings()
    assert (s.retention_raw, s.retention_1m, s.retention_1h) == (
        timedelta(days=7),
        timedelta(days=90),
        timedelta(days=730),
    )
    plan = dict(retention_plan(s))
    assert plan["metrics"] == plan["logs"] == timedelta(days=7)
    assert plan["metric_rollups_1m"] == timedelta(days=90) and plan["metric_rollups_1h"] == timedelta(
        days=730
    )
    monkeypatch.setenv("FLEETPULSE_PROCESSORS_RETENTION_RAW", "P3D")
    monkeypatch.setenv("FLEETPULSE_PROCESSORS_BATCH_MAX_RECORDS", "17")
    from_env = ProcessorSettings(common=s.common)
    assert from_env.retention_raw == timedelta(days=3) and from_env.batch_max_records == 17
    with pytest.raises(ValueError, match="batch_max_records"):
        ProcessorSettings(common=s.common, batch_max_records=0)


class FakeDatabase:
    """Fails as told, and records what each committed transaction wrote."""

    def __init__(self, script: list[Exception | None], log: list[str]) -> None:
        self.script = script
        self.log = log

    @contextlib.asynccontextmanager
    async def transaction(self, *, rollback: bool = False) -> AsyncIterator[object]:
        if rollback:  # the write probe of a reference message: always rolled back
            yield object()
            self.log.append("probe")
            return
        outcome = self.script.pop(0) if self.script else None
        yield object()
        if outcome is not None:
            self.log.append(f"rollback:{type(outcome).__name__}")
            raise outcome
        self.log.append("db-commit")


class FakeConsumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.commits: list[dict[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.log.append("kafka-commit")
        self.commits.append(offsets)


class FakeProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes) -> None:
        self.log.append("dead-letter")
        self.sent.append(value)


def service_with(
    script: list[Exception | None], monkeypatch: pytest.MonkeyPatch
) -> tuple[persist.PersistenceService, list[str], list[list[int]]]:
    events: list[str] = []
    written: list[list[int]] = []
    messages: list[str] = []

    async def write_batch(conn: object, payloads: list[Any], highest: dict[Any, int], **_: Any) -> None:
        # The poison: a log whose message the database refuses.
        if any(isinstance(p, LogRecord) and "poison" in p.message for p in payloads):
            raise DatabaseRejected("the database refuses it")
        if any(p.server_id == probe.PROBE_SERVER for p in payloads):
            return  # the write probe's reference message, rolled back
        written.append(sorted(highest.values()))
        messages.extend(p.message for p in payloads if isinstance(p, LogRecord))

    monkeypatch.setattr(db, "write_batch", write_batch)
    service = persist.PersistenceService(settings(), FakeDatabase(script, events))  # type: ignore[arg-type]
    service._producer = FakeProducer(events)
    service.written_messages = messages  # type: ignore[attr-defined]
    return service, events, written


async def test_offsets_are_committed_only_after_the_database_commit_and_outages_are_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, events, written = service_with(
        [DatabaseUnavailable("down"), DatabaseUnavailable("still down"), None], monkeypatch
    )
    consumer = FakeConsumer(events)
    await service._handle(consumer, [metric(0), metric(1), metric(2, partition=3)])
    assert events == [
        "rollback:DatabaseUnavailable",
        "rollback:DatabaseUnavailable",
        "db-commit",
        "kafka-commit",
    ]
    assert service.stats.db_retries == 2
    assert {(tp.partition, offset) for tp, offset in consumer.commits[0].items()} == {(0, 2), (3, 3)}
    assert written == [[1, 2]] * 3  # the same batch, unchanged, on every attempt


async def test_a_message_the_database_rejects_is_isolated_and_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, events, _ = service_with([], monkeypatch)
    consumer = FakeConsumer(events)
    records = [log(0, "a"), log(1, "b"), log(2, "poison"), log(3, "c"), log(4, "d")]
    await service._handle(consumer, records)
    assert service.stats.dead_letters == 1
    assert b"poison" in service._producer.sent[0]  # type: ignore[union-attr]
    # Every other message was written; the commit came last and covers all five.
    assert sorted(service.written_messages) == ["a", "b", "c", "d"]  # type: ignore[attr-defined]
    assert events[-1] == "kafka-commit" and events.index("dead-letter") < events.index("kafka-commit")
    assert [offset for offset in consumer.commits[0].values()] == [5]
