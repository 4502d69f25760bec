import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.canonical import METRIC_SAMPLE, LogRecord, MetricSample, log_entry_id

SERVER = uuid.UUID("00000000-0000-4000-8000-000000000001")


def test_offsets_normalise_to_utc_and_round_trip_through_bytes() -> None:
    raw = (
        b'{"server_id": "00000000-0000-4000-8000-000000000001", "time": "2025-12-12T15:03:25+02:00",'
        b' "received_at": "2025-12-12T13:03:26Z", "cpu_percent": 12, "memory_percent": 39.9}'
    )
    sample = METRIC_SAMPLE.validate_json(raw)
    assert sample.time == datetime(2025, 12, 12, 13, 3, 25, tzinfo=UTC)
    assert sample.time.tzinfo is UTC
    assert METRIC_SAMPLE.validate_json(sample.to_bytes()) == sample


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        MetricSample(
            server_id=SERVER,
            time=datetime(2025, 1, 1),
            received_at=datetime.now(UTC),
            cpu_percent=1,
            memory_percent=1,
        )


def test_log_entry_id_is_deterministic_and_position_sensitive() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    a = log_entry_id(SERVER, t, "syslog", "hello", 0)
    assert a == log_entry_id(SERVER, t, "syslog", "hello", 0)
    assert a != log_entry_id(SERVER, t, "syslog", "hello", 1)
    record = LogRecord(server_id=SERVER, entry_id=a, time=t, received_at=t, level="INFO", message="hello")
    assert record.kind == "log_record"
