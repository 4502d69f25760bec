"""Persistence never skips, with fakes: whatever a batch raises, the consumer is rewound to the
first unwritten offset and the batch is written again; any error that does not pass isolates its
message by splitting; a broken write path stops persistence instead of dead-lettering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from psycopg import errors as pg_errors
from pydantic import TypeAdapter

from schemas import topics
from schemas.canonical import DeadLetter, LogRecord, MetricSample, utcnow
from stream_processors import batch as batch_module
from stream_processors import db, persist, probe
from stream_processors.batch import Decoder
from stream_processors.errors import ProcessorError
from tests.unit.test_persist_batch import PREFIX, T0, FakeProducer, Record, log, metric, settings

METRICS = topics.METRICS.name(PREFIX)


class FakeLog:
    """A consumer over an in-memory log: positions advance with each fetch, `seek` moves them,
    commits are recorded (and may be made to fail once)."""

    def __init__(self, records: list[Record], fail_commits: int = 0) -> None:
        self.records = records
        self.tps = sorted({TopicPartition(r.topic, r.partition) for r in records})
        self.positions = dict.fromkeys(self.tps, 0)
        self.committed: dict[TopicPartition, int] = {}
        self.fail_commits = fail_commits
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        got: dict[TopicPartition, list[Record]] = {}
        for tp in self.tps:
            mine = [
                r
                for r in self.records
                if (r.topic, r.partition) == (tp.topic, tp.partition) and r.offset >= self.positions[tp]
            ][:max_records]
            if mine:
                got[tp] = mine
                self.positions[tp] = mine[-1].offset + 1
                max_records -= len(mine)
        if not got:
            await asyncio.sleep(timeout_ms / 1000)
        return got

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise KafkaConnectionError("the coordinator went away")
        self.committed.update(offsets)


class Database:
    """Commits or rolls back; the write itself is the patched `db.write_batch`."""

    def __init__(self) -> None:
        self.probes = 0

    @contextlib.asynccontextmanager
    async def transaction(self, *, rollback: bool = False) -> AsyncIterator[object]:
        if rollback:
            self.probes += 1
        yield object()


def service(
    monkeypatch: pytest.MonkeyPatch, write: Callable[[list[Any]], None], **values: Any
) -> tuple[persist.PersistenceService, list[Any], Database]:
    """A service whose writes go through `write` (which may raise), recording what it wrote."""
    written: list[Any] = []

    async def write_batch(conn: object, payloads: list[Any], highest: dict[Any, int], **_: Any) -> None:
        write(payloads)
        if not any(p.server_id == probe.PROBE_SERVER for p in payloads):
            written.extend(payloads)

    monkeypatch.setattr(db, "write_batch", write_batch)
    database = Database()
    svc = persist.PersistenceService(settings(**values), database)  # type: ignore[arg-type]
    svc._producer = FakeProducer([])
    return svc, written, database


async def run_until(svc: persist.PersistenceService, log_: FakeLog, done: Callable[[], bool]) -> None:
    svc._consumer = log_
    runner = asyncio.create_task(svc._run())
    try:
        async with asyncio.timeout(10):
            while not done():
                assert not runner.done(), runner
                await asyncio.sleep(0.01)
    finally:
        svc._stopping.set()
        await runner


def letters(svc: persist.PersistenceService) -> list[DeadLetter]:
    sent = svc._producer.sent  # type: ignore[union-attr]
    return [DeadLetter.model_validate_json(value) for value in sent]


async def test_a_failed_commit_rewinds_and_the_batch_is_written_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc, written, _ = service(monkeypatch, lambda payloads: None, batch_max_records=4)
    records = [metric(i) for i in range(6)]
    source = FakeLog(records, fail_commits=1)
    await run_until(svc, source, lambda: source.committed.get(source.tps[0]) == 6)
    # The first batch (0-3) failed at its commit: rewound to 0, read and written again.
    assert source.seeks == [(source.tps[0], 0)]
    assert [int((m.time - T0).total_seconds()) for m in written] == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert svc.stats.failed_batches == 1 and svc.stats.failing == 0


async def test_any_exception_of_a_batch_rewinds_instead_of_fetching_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's bug: a batch raised, was logged, and the next fetch started after it."""
    svc, written, _ = service(monkeypatch, lambda payloads: None, batch_max_records=10)
    monkeypatch.setattr(svc, "_send_dead_letters", _raise_once(svc._send_dead_letters))
    records = [metric(i) for i in range(3)] + [Record(METRICS, 0, 3, b"k", b"{broken")]
    source = FakeLog(records)
    await run_until(svc, source, lambda: source.committed.get(source.tps[0]) == 4)
    assert source.seeks == [(source.tps[0], 0)]  # back to the batch's first offset, not past it
    assert [int((m.time - T0).total_seconds()) for m in written] == [0, 1, 2] * 2
    assert len(letters(svc)) == 1 and letters(svc)[0].offset == 3


def _raise_once(send: Any) -> Any:
    calls = {"n": 0}

    async def flaky(batch_letters: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the dead-letter topic is gone (not a KafkaError)")
        await send(batch_letters)

    return flaky


async def test_a_message_that_raises_anything_is_isolated_and_dead_lettered_with_its_raw_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def write(payloads: list[Any]) -> None:
        if any(isinstance(p, MetricSample) and p.cpu_percent == 66.0 for p in payloads):
            raise OverflowError("int too big to convert")

    svc, written, database = service(monkeypatch, write)
    poison = metric(3)
    poison.value = (poison.value or b"").replace(b'"cpu_percent":1.5', b'"cpu_percent":66.0')
    records = [metric(0), metric(1), metric(2), poison, metric(4), metric(5)]
    await svc._handle(_Committer(), records)
    assert len(written) == 5 and all(m.cpu_percent == 1.5 for m in written)
    (letter,) = letters(svc)
    assert letter.offset == 3 and letter.value == poison.value.decode()
    assert letter.error == "unwritable: OverflowError: int too big to convert"
    assert database.probes == 1  # a reference sample could be written: the message is at fault


async def test_a_broken_write_path_dead_letters_nothing_and_retries_until_it_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = {"yes": True}

    def write(payloads: list[Any]) -> None:
        if broken["yes"] and any(isinstance(p, MetricSample) for p in payloads):
            raise TypeError("a bug: every sample fails")

    svc, written, database = service(monkeypatch, write)
    records = [metric(i) for i in range(4)] + [log(10, "fine")]
    source = FakeLog(records)

    def fixed_after_a_while() -> bool:
        if svc.stats.write_path_failures >= 3:
            broken["yes"] = False  # the fix is deployed
        return bool(source.committed) and all(
            source.committed[tp] == source.positions[tp] for tp in source.tps
        )

    await run_until(svc, source, fixed_after_a_while)
    assert letters(svc) == []  # nothing dead-lettered while the write path was broken
    assert svc.stats.write_path_failures >= 3 and database.probes >= 3
    assert len({m.time for m in written if isinstance(m, MetricSample)}) == 4
    assert any(isinstance(m, LogRecord) for m in written)
    assert svc.stats.failing == 0


class _Committer:
    async def commit(self, offsets: dict[Any, int]) -> None:
        self.offsets = offsets


def test_any_decoding_error_of_one_record_dead_letters_that_record() -> None:
    decoder = Decoder(PREFIX)

    class Exploding:
        def validate_json(self, value: bytes) -> Any:
            if b"boom" in value:
                raise OverflowError("date value out of range")
            return TypeAdapter(MetricSample).validate_json(value)

    decoder._adapters[METRICS] = Exploding()  # type: ignore[assignment]
    first = metric(0)
    batch = decoder.decode([first, Record(METRICS, 0, 1, b"k", b'{"boom": 1}'), metric(2)])
    assert [m.position.offset for m in batch.messages] == [0, 2]
    assert batch.messages[0].raw == first.value and batch.messages[0].key == b"k"
    assert [(d.offset, d.error) for d in batch.dead_letters] == [
        (1, "OverflowError: date value out of range")
    ]


def test_a_decoder_that_refuses_a_valid_message_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "LOG_RECORD", TypeAdapter(int))
    with pytest.raises(ProcessorError, match=r"logs\.v1 refuses a valid message"):
        Decoder(PREFIX)


def test_reference_messages_encode_and_decode() -> None:
    for kind in probe.REFERENCE_KINDS:
        message = probe.reference(kind, utcnow())
        assert kind.model_validate_json(message.to_bytes()) == message
        assert orjson.loads(message.to_bytes())["server_id"] == str(probe.PROBE_SERVER)


@pytest.mark.parametrize(
    ("error", "passes"),
    [
        (psycopg.OperationalError("connection is closed"), True),
        (pg_errors.SerializationFailure(), True),
        (pg_errors.DeadlockDetected(), True),
        (pg_errors.AdminShutdown(), True),
        (pg_errors.TooManyConnections(), True),
        (pg_errors.LockNotAvailable(), True),
        (pg_errors.ReadOnlySqlTransaction(), True),
        (pg_errors.IoError(), True),
        # Never passes: retrying one such message forever would stall every partition behind it.
        (pg_errors.ProgramLimitExceeded(), False),  # e.g. an index row too large
        (pg_errors.NumericValueOutOfRange(), False),
        (pg_errors.CharacterNotInRepertoire(), False),
        (pg_errors.UniqueViolation(), False),
        (pg_errors.UndefinedTable(), False),  # systemic: the write probe tells (see probe.py)
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), False),
    ],
)
def test_which_database_errors_pass(error: psycopg.Error, passes: bool) -> None:
    assert db.passing(error) is passes
