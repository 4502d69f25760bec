"""Every numeric, text, time and list field of every agent frame, both dialects, at its bounds: the
largest value its column holds is accepted (and converts, encodes and decodes again unchanged),
the next one is refused with a `ValidationError` naming the field, never another exception."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.session import classify
from ingest.settings import IngestSettings
from schemas import agent_wire as wire
from schemas.bounds import GIB_LIMIT, INT4_MAX, INT4_MIN, INT8_MAX, TimeWindow
from schemas.canonical import LOG_RECORD, METRIC_SAMPLE, MetricSample
from tests.conftest import FULL
from tests.unit.test_ingest_wire import SERVER

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow()

SEED: dict[str, Any] = {
    "type": "metrics",
    "seq": 1,
    "timestamp": "2026-03-01T11:00:00Z",
    "cpu_percent": 1.5,
    "memory_percent": 2.5,
    "disk_usage": [{"path": "/", "total": 10, "used": 4, "free": 6, "percent": 40.0}],
    "network": [
        {
            "interface": "eth0",
            "bytes_sent": 1,
            "bytes_recv": 2,
            "packets_sent": 3,
            "packets_recv": 4,
            "errors_in": 5,
            "errors_out": 6,
        }
    ],
    "memory_total": 100,
    "memory_used": 50,
    "load_average": [0.5, 0.25, 0.125],
    "uptime_seconds": 60,
    "cpu_cores": 4,
    "containers": [
        {"id": "c1", "name": "web", "image": "nginx", "state": "running", "status": "Up", "cpu_percent": 3.0}
        | {"memory_bytes": 1024}
    ],
    "top_processes": [
        {"pid": 1, "name": "init", "cpu_percent": 0.5, "memory_percent": 0.1, "user": "root", "status": "S"}
    ],
}
LEGACY: dict[str, Any] = {
    "type": "metrics",
    "data": {
        "server_id": "uuid",
        "timestamp": "2026-03-01T13:00:00+02:00",
        "cpu": {"usage_percent": 12, "cores": 1, "frequency_mhz": 2400},
        "memory": {"total_gb": 16, "used_gb": 6.21, "available_gb": 8.97, "usage_percent": 39.9},
        "disk": {"total_gb": 98, "used_gb": 41.3, "available_gb": 51.55, "usage_percent": 44.5},
        "network": {"bytes_sent": 1, "bytes_recv": 2, "packets_sent": 3, "packets_recv": 4},
        "containers": [{"id": "a1", "name": "web", "image": "nginx", "status": "Up", "state": "running"}],
        "processes": [
            {"pid": 1234, "name": "python3", "cpu": 3.2, "memory": 85.4, "status": "S", "user": "u"}
        ],
    },
}
LOG: dict[str, Any] = {
    "type": "log",
    "seq": 2,
    "level": "info",
    "message": "m",
    "timestamp": "2026-03-01T11:00:00Z",
}
LOGS: dict[str, Any] = {
    "type": "logs",
    "seq": 3,
    "entries": [{"level": "warn", "message": "m", "timestamp": "2026-03-01T11:00:00Z", "source": "s"}],
}
COMMAND: dict[str, Any] = {
    "type": "command_response",
    "seq": 4,
    "command_id": str(SERVER),
    "output": "o",
    "exit_code": 0,
    "duration_ms": 5,
    "error": "e",
}
DOCKER: dict[str, Any] = {
    "type": "docker_response",
    "seq": 5,
    "command_id": str(SERVER),
    "success": True,
    "message": "m",
    "logs": ["l"],
}
LEGACY_RESULT: dict[str, Any] = {
    "type": "command_result",
    "request_id": "r",
    "data": {"output": "o", "exit_code": 0},
}
LEGACY_STARTED: dict[str, Any] = {
    "type": "container_started",
    "request_id": "r",
    "data": {"container_id": "c", "status": "started"},
}
LEGACY_LOGS: dict[str, Any] = {
    "type": "container_logs",
    "request_id": "r",
    "data": {"container_id": "c", "logs": ["l"]},
}
LEGACY_ERROR: dict[str, Any] = {"type": "error", "message": "m", "request_id": "r"}
AUTH: dict[str, Any] = {"type": "auth", "api_key": "fpk_x_y"}

COUNT_OK = [0, INT8_MAX]
COUNT_BAD = [-1, INT8_MAX + 1, 2**64, 2**64 + 1, "1e400", 1.5]
SMALL_OK = [0, INT4_MAX]
SMALL_BAD = [-1, INT4_MAX + 1, 2**32 + 8, INT8_MAX + 1]
INT4_OK = [INT4_MIN, 0, INT4_MAX]
INT4_BAD = [INT4_MIN - 1, INT4_MAX + 1, 2**63]
PERCENT_OK = [0, 100, 5e-324]
PERCENT_BAD = [-0.1, 100.5, "NaN", "Infinity", "-Infinity", "1e309"]
MEASURE_OK = [0, 1.7976931348623157e308, 5e-324]
MEASURE_BAD = [-1e-300, "NaN", "Infinity", "1e309"]
# GiB: the largest double below 2^33 converts to 2^63 - 2^10 bytes; 2^33 itself would be 2^63.
GIB_OK = [0, 8, GIB_LIMIT - 2**-20]
GIB_BAD = [GIB_LIMIT, 1e300, "NaN", "Infinity", -1]
# Legacy process memory: RSS in MiB, converted to bytes (round(v * 2^20)); 2^40 MiB is 2^60 bytes.
MIB_OK = [0, 85.4, 2**40]
MIB_BAD = [2**40 + 1, 1e300, "NaN", "Infinity", -1]


NAME_OK, NAME_BAD = ["x" * 256, "😀 ü"], ["x" * 257, "a\x00b"]
LINE_OK, LINE_BAD = ["x" * 65536, "line\ttab"], ["x" * 65537, "\x00"]
OUTPUT_OK, OUTPUT_BAD = ["x" * 1024 * 1024], ["x" * (1024 * 1024 + 1), "nul\x00"]
TIME_OK = [
    "2000-01-01T00:00:00Z",
    "2026-03-02T12:00:00Z",
    "2026-03-02T14:00:00+02:00",
    "2000-01-01T05:00:00+05:00",
]
TIME_BAD = [
    "1999-12-31T23:59:59Z",
    "2026-03-02T12:00:01Z",  # one second past the receiving clock plus one day
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",  # year 0 once in UTC: used to raise OverflowError
    "9999-12-31T23:59:59-01:00",  # year 10000 once in UTC: likewise
    "9999-12-31T23:59:59Z",
    "2026-03-01T11:00:00",  # naive
]

# (frame, path to the field, accepted values, refused values)
FIELDS: list[tuple[dict[str, Any], str, list[Any], list[Any]]] = [
    (SEED, "seq", COUNT_OK, COUNT_BAD),
    (SEED, "timestamp", TIME_OK, TIME_BAD),
    (SEED, "cpu_percent", PERCENT_OK, PERCENT_BAD),
    (SEED, "memory_percent", PERCENT_OK, PERCENT_BAD),
    *[(SEED, f"disk_usage.0.{f}", COUNT_OK, COUNT_BAD) for f in ("total", "used", "free")],
    (SEED, "disk_usage.0.percent", PERCENT_OK, PERCENT_BAD),
    (SEED, "disk_usage.0.path", NAME_OK, NAME_BAD),
    *[
        (SEED, f"network.0.{f}", COUNT_OK, COUNT_BAD)
        for f in ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errors_in", "errors_out")
    ],
    (SEED, "network.0.interface", NAME_OK, NAME_BAD),
    *[(SEED, f, COUNT_OK, COUNT_BAD) for f in ("memory_total", "memory_used", "uptime_seconds")],
    (SEED, "cpu_cores", SMALL_OK, SMALL_BAD),
    *[(SEED, f"load_average.{i}", MEASURE_OK, MEASURE_BAD) for i in range(3)],
    *[(SEED, f"containers.0.{f}", NAME_OK, NAME_BAD) for f in ("id", "name", "image")],
    *[(SEED, f"containers.0.{f}", NAME_OK, NAME_BAD) for f in ("state", "status")],
    (SEED, "containers.0.cpu_percent", MEASURE_OK, MEASURE_BAD),
    (SEED, "containers.0.memory_bytes", COUNT_OK, COUNT_BAD),
    (SEED, "top_processes.0.pid", SMALL_OK, SMALL_BAD),
    *[(SEED, f"top_processes.0.{f}", NAME_OK, NAME_BAD) for f in ("name", "user", "status")],
    *[(SEED, f"top_processes.0.{f}", MEASURE_OK, MEASURE_BAD) for f in ("cpu_percent", "memory_percent")],
    (SEED, "top_processes.0.memory_rss_bytes", COUNT_OK, COUNT_BAD),
    (LEGACY, "data.timestamp", TIME_OK, TIME_BAD),
    (LEGACY, "data.server_id", NAME_OK, NAME_BAD),
    (LEGACY, "data.cpu.usage_percent", [*PERCENT_OK, 12], PERCENT_BAD),
    (LEGACY, "data.cpu.cores", SMALL_OK, SMALL_BAD),
    (LEGACY, "data.cpu.frequency_mhz", MEASURE_OK, MEASURE_BAD),
    *[(LEGACY, f"data.{part}.usage_percent", PERCENT_OK, PERCENT_BAD) for part in ("memory", "disk")],
    *[(LEGACY, f"data.memory.{f}", GIB_OK, GIB_BAD) for f in ("total_gb", "used_gb", "available_gb")],
    *[(LEGACY, f"data.disk.{f}", GIB_OK, GIB_BAD) for f in ("total_gb", "used_gb", "available_gb")],
    *[
        (LEGACY, f"data.network.{f}", COUNT_OK, COUNT_BAD)
        for f in ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv")
    ],
    *[
        (LEGACY, f"data.containers.0.{f}", NAME_OK, NAME_BAD)
        for f in ("id", "name", "image", "status", "state")
    ],
    (LEGACY, "data.processes.0.pid", SMALL_OK, SMALL_BAD),
    *[(LEGACY, f"data.processes.0.{f}", NAME_OK, NAME_BAD) for f in ("name", "user", "status")],
    (LEGACY, "data.processes.0.cpu", MEASURE_OK, MEASURE_BAD),
    (LEGACY, "data.processes.0.memory", MIB_OK, MIB_BAD),
    (LOG, "seq", COUNT_OK, COUNT_BAD),
    (LOG, "message", LINE_OK, LINE_BAD),
    (LOG, "source", NAME_OK, NAME_BAD),
    (LOG, "timestamp", TIME_OK, TIME_BAD),
    (LOGS, "entries.0.message", LINE_OK, LINE_BAD),
    (LOGS, "entries.0.source", NAME_OK, NAME_BAD),
    (LOGS, "entries.0.timestamp", TIME_OK, TIME_BAD),
    (COMMAND, "seq", COUNT_OK, COUNT_BAD),
    (COMMAND, "output", OUTPUT_OK, OUTPUT_BAD),
    (COMMAND, "exit_code", INT4_OK, INT4_BAD),
    (COMMAND, "duration_ms", COUNT_OK, COUNT_BAD),
    (COMMAND, "error", LINE_OK, LINE_BAD),
    (DOCKER, "message", LINE_OK, LINE_BAD),
    (DOCKER, "logs.0", LINE_OK, LINE_BAD),
    (LEGACY_RESULT, "request_id", ["x" * 128], ["x" * 129, "\x00"]),
    (LEGACY_RESULT, "data.output", OUTPUT_OK, OUTPUT_BAD),
    (LEGACY_RESULT, "data.exit_code", INT4_OK, INT4_BAD),
    (LEGACY_STARTED, "data.container_id", NAME_OK, NAME_BAD),
    (LEGACY_STARTED, "data.status", NAME_OK, NAME_BAD),
    (LEGACY_LOGS, "data.logs.0", LINE_OK, LINE_BAD),
    (LEGACY_ERROR, "message", LINE_OK, LINE_BAD),
    (LEGACY_ERROR, "request_id", ["x" * 128], ["x" * 129]),
    (AUTH, "api_key", ["x" * 256], ["x" * 257, "fpk_\x00_y"]),
]

# (frame, path to the list, most items accepted)
LISTS: list[tuple[dict[str, Any], str, int]] = [
    (SEED, "disk_usage", 256),
    (SEED, "network", 256),
    (SEED, "containers", 4096),
    (SEED, "top_processes", 10_000),
    (LEGACY, "data.containers", 4096),
    (LEGACY, "data.processes", 100_000),
    (LOGS, "entries", 1000),
    (DOCKER, "logs", 100_000),
    (LEGACY_LOGS, "data.logs", 100_000),
]


def raw(frame: dict[str, Any]) -> str:
    """JSON text as an agent may send it: NaN, infinities and 1e309 spelled as given."""
    text = json.dumps(frame, allow_nan=True)
    for literal in ("NaN", "Infinity", "-Infinity", "1e309", "1e400"):
        text = text.replace(json.dumps(f"<{literal}>"), literal)
    return text


def with_value(frame: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(frame)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity", "1e309", "1e400"):
        value = f"<{value}>"
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


def decode(frame: dict[str, Any]) -> wire.AgentFrame:
    return wire.decode(raw(frame), WINDOW, NOW)


def converts(frame: wire.AgentFrame) -> None:
    """An accepted frame converts to canonical payloads that encode and decode unchanged."""
    if isinstance(frame, wire.SeedMetricsFrame | wire.LegacyMetricsFrame):
        sample = frame.to_canonical(SERVER, NOW, 20)
        assert METRIC_SAMPLE.validate_json(sample.to_bytes()) == sample
        if isinstance(frame, wire.SeedMetricsFrame):
            # What ingest produces: the same bytes, validated once.
            assert frame.canonical_bytes(SERVER, NOW, 20) == sample.to_bytes()
    elif isinstance(frame, wire.LogFrame | wire.LogsFrame):
        for record in frame.to_canonical(SERVER, NOW):
            assert LOG_RECORD.validate_json(record.to_bytes()) == record
    else:
        frame.to_bytes()


def cases(accepted: bool) -> Iterator[Any]:
    for frame, path, ok, bad in FIELDS:
        for value in ok if accepted else bad:
            label = repr(value) if len(repr(value)) < 30 else f"{repr(value)[:12]}..x{len(value)}"
            yield pytest.param(frame, path, value, id=f"{frame['type']}:{path}={label}")


@pytest.mark.parametrize(("frame", "path", "value"), list(cases(accepted=True)))
def test_the_largest_value_a_field_holds_is_accepted_and_stored_unchanged(
    frame: dict[str, Any], path: str, value: Any
) -> None:
    converts(decode(with_value(frame, path, value)))


@pytest.mark.parametrize(("frame", "path", "value"), list(cases(accepted=False)))
def test_a_value_past_the_bound_is_a_validation_error_naming_the_field(
    frame: dict[str, Any], path: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as info:
        decode(with_value(frame, path, value))
    code, detail = classify(info.value)
    assert code == "validation"
    assert detail.startswith(f"{path}:"), detail


@pytest.mark.parametrize(
    ("frame", "path", "most"), [pytest.param(*c, id=f"{c[0]['type']}:{c[1]}") for c in LISTS]
)
def test_lists_are_bounded(frame: dict[str, Any], path: str, most: int) -> None:
    *parents, last = path.split(".")
    node: Any = frame
    for part in parents:
        node = node[part]
    one = node[last][0]
    converts(decode(with_value(frame, path, [one] * most)))
    with pytest.raises(ValidationError) as info:
        decode(with_value(frame, path, [one] * (most + 1)))
    assert classify(info.value)[1].startswith(f"{path}:")


def test_cpu_cores_past_int4_is_refused_not_wrapped() -> None:
    """The issue: 2^32 + 8 cores used to be stored as 8."""
    with pytest.raises(ValidationError, match="cpu_cores"):
        decode(with_value(SEED, "cpu_cores", 2**32 + 8))


def test_legacy_gib_at_the_limit_converts_to_bytes_that_fit_a_bigint() -> None:
    frame = decode(with_value(LEGACY, "data.memory.total_gb", GIB_LIMIT - 2**-20))
    assert isinstance(frame, wire.LegacyMetricsFrame)
    sample = frame.to_canonical(SERVER, NOW, 20)
    assert sample.memory_total_bytes == 2**63 - 2**10 <= INT8_MAX


def test_legacy_tolerance_is_kept_ints_for_floats_numbers_for_text_and_local_offsets() -> None:
    frame = decode(with_value(with_value(LEGACY, "data.processes.0.name", 123), "data.memory.total_gb", 16))
    assert isinstance(frame, wire.LegacyMetricsFrame)
    sample = frame.to_canonical(SERVER, NOW, 20)
    assert sample.processes[0].name == "123"
    assert sample.memory_total_bytes == 16 * 2**30
    assert sample.time == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def test_the_window_is_the_ingest_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPULSE_INGEST_TIMESTAMP_EARLIEST", "2020-01-01T00:00:00Z")
    monkeypatch.setenv("FLEETPULSE_INGEST_TIMESTAMP_AHEAD_SECONDS", "60")
    window = IngestSettings().timestamp_window
    assert window == TimeWindow(datetime(2020, 1, 1, tzinfo=UTC), timedelta(seconds=60))
    for value, accepted in [
        ("2019-12-31T23:59:59Z", False),
        ("2020-01-01T00:00:00Z", True),
        ("2026-03-01T12:01:00Z", True),
        ("2026-03-01T12:01:01Z", False),
    ]:
        frame = raw(with_value(SEED, "timestamp", value))
        if accepted:
            wire.decode(frame, window, NOW)
        else:
            with pytest.raises(ValidationError, match="timestamp must not be"):
                wire.decode(frame, window, NOW)
    with pytest.raises(ValueError, match="timestamp_earliest"):
        IngestSettings(timestamp_earliest=datetime(2020, 1, 1))  # naive: refused


def test_the_seq_of_a_refused_frame_is_found_when_it_is_valid() -> None:
    assert wire.refused_seq(raw(with_value(SEED, "cpu_percent", "NaN"))) == 1
    assert wire.refused_seq('{"type": "metrics", "seq": 18446744073709551616}') is None
    assert wire.refused_seq("{not json") is None
    assert wire.refused_seq('{"type": "metrics", "seq": -1}') is None


# --- generated frames: whatever the values, decoding raises a ValidationError or the frame stores ---

BOUNDARY_INTS = (
    st.sampled_from(
        [
            0,
            1,
            -1,
            2**31 - 1,
            2**31,
            2**32 + 8,
            2**53,
            2**53 + 1,
            2**63 - 1,
            2**63,
            2**64 - 1,
            2**64,
            2**64 + 1,
        ]
    )
    | st.integers()
)
BOUNDARY_FLOATS = st.sampled_from(
    [0.0, -0.0, 100.0, 100.00000000000001, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
) | st.floats(allow_nan=True, allow_infinity=True)
SPECIAL = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309"])
TIMES = st.sampled_from(TIME_OK + TIME_BAD) | st.datetimes(
    timezones=st.sampled_from([UTC, *[timezone(timedelta(hours=h)) for h in (-12, 5, 14)]])
).map(lambda d: d.isoformat())
TEXT = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "\udfff"]), max_size=8
) | st.integers(250, 260).map(lambda n: "n" * n)


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{prefix}{k}.")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], value


def strategy_for(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return BOUNDARY_INTS | BOUNDARY_FLOATS | SPECIAL
    if isinstance(value, float):
        return BOUNDARY_FLOATS | SPECIAL | BOUNDARY_INTS
    return TEXT


TEMPLATES = [
    SEED,
    LEGACY,
    LOG,
    LOGS,
    COMMAND,
    DOCKER,
    LEGACY_RESULT,
    LEGACY_STARTED,
    LEGACY_LOGS,
    LEGACY_ERROR,
]


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    frame: dict[str, Any] = draw(st.sampled_from(TEMPLATES))
    fields = [(p, v) for p, v in leaves(frame) if p not in ("type", "command_id")]
    for path, value in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique=True)):
        new = draw(TIMES) if path.endswith("timestamp") else draw(strategy_for(value))
        frame = with_value(frame, path, new)
    return frame


@settings(max_examples=1500 if FULL else 300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames())
def test_any_frame_either_fails_validation_or_converts_encodes_and_fits_its_columns(
    frame: dict[str, Any],
) -> None:
    try:
        decoded = decode(frame)
    except ValidationError as exc:
        classify(exc)  # and the refusal can be described
        return
    converts(decoded)
    if isinstance(decoded, wire.SeedMetricsFrame | wire.LegacyMetricsFrame):
        sample = decoded.to_canonical(SERVER, NOW, 20)
        for _, value in leaves(MetricSample.model_validate_json(sample.to_bytes()).model_dump(mode="json")):
            if isinstance(value, int) and not isinstance(value, bool):
                assert 0 <= value <= INT8_MAX
            if isinstance(value, float):
                assert value == value and abs(value) != float("inf")
