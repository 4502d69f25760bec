"""The agent socket's frames: both dialects decode, convert to canonical, and encode."""

import typing
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from schemas.agent_wire import (
    AGENT_FRAME,
    GIB,
    SERVER_FRAME,
    AckFrame,
    AuthFrame,
    CommandResponseFrame,
    ErrorFrame,
    LegacyCommandResultFrame,
    LegacyContainerLogsFrame,
    LegacyErrorFrame,
    LegacyMetricsFrame,
    LogsFrame,
    SeedContainer,
    SeedDisk,
    SeedInterface,
    SeedMetricsFrame,
    SeedProcess,
    StopContainerFrame,
    ack_bytes,
)
from schemas.canonical import ContainerSample, DiskSample, InterfaceSample, MetricSample, ProcessSample

SERVER = uuid.UUID("00000000-0000-4000-8000-000000000001")
NOW = datetime(2025, 12, 12, 13, 3, 30, tzinfo=UTC)

LEGACY_METRICS = (
    b'{"type": "metrics", "data": {"server_id": "00000000-0000-4000-8000-000000000001",'
    b' "timestamp": "2025-12-12T15:03:25+02:00",'
    b' "cpu": {"usage_percent": 12.5, "cores": 1, "frequency_mhz": 2400},'
    b' "memory": {"total_gb": 15.54, "used_gb": 6.21, "available_gb": 8.97, "usage_percent": 39.9},'
    b' "disk": {"total_gb": 97.87, "used_gb": 41.3, "available_gb": 51.55, "usage_percent": 44.5},'
    b' "network": {"bytes_sent": 123456789, "bytes_recv": 987654321, "packets_sent": 345678,'
    b' "packets_recv": 456789},'
    b' "containers": [{"id": "a1b2c3d4e5f6", "name": "web", "image": "nginx:latest", "status": "Up 2 hours",'
    b' "state": "running", "created": "2025-12-10T08:00:00+02:00",'
    b' "ports": [{"private_port": 80, "public_port": 8080, "type": "tcp"}]}],'
    b' "processes": [{"pid": 1234, "name": "python3", "cpu": 3.2, "memory": 85.4, "status": "sleep",'
    b' "user": "www-data"}, {"pid": 1, "name": "init", "cpu": 9.5, "memory": 0.1, "status": "sleep",'
    b' "user": "root"}]}}'
)

SEED_METRICS = (
    b'{"type": "metrics", "seq": 7, "server_id": "00000000-0000-4000-8000-000000000001",'
    b' "cpu_percent": 45.2, "memory_percent": 62.5,'
    b' "disk_usage": [{"path": "/", "total": 1000, "used": 400, "free": 600, "percent": 40.0}],'
    b' "network": [{"interface": "eth0", "bytes_sent": 10, "bytes_recv": 20, "packets_sent": 1}],'
    b' "load_average": [0.5, 0.25, 0.125], "uptime_seconds": 3600,'
    b' "timestamp": "2024-01-01T00:00:00Z"}'
)


def test_seed_metrics_decode_and_convert() -> None:
    frame = AGENT_FRAME.validate_json(SEED_METRICS)
    assert isinstance(frame, SeedMetricsFrame)
    sample = frame.to_canonical(SERVER, NOW, max_processes=10)
    assert sample.time == datetime(2024, 1, 1, tzinfo=UTC)
    assert sample.seq == 7
    assert sample.disks[0].mount == "/" and sample.disks[0].free_bytes == 600
    assert sample.interfaces[0].interface == "eth0" and sample.interfaces[0].packets_sent == 1
    assert (sample.load1, sample.load5, sample.load15) == (0.5, 0.25, 0.125)
    assert sample.containers is None


def test_legacy_metrics_are_told_apart_by_shape_and_convert_to_bytes_in_utc() -> None:
    frame = AGENT_FRAME.validate_json(LEGACY_METRICS)
    assert isinstance(frame, LegacyMetricsFrame)
    sample = frame.to_canonical(SERVER, NOW, max_processes=1)
    assert sample.time == datetime(2025, 12, 12, 13, 3, 25, tzinfo=UTC)
    assert sample.memory_total_bytes == round(15.54 * GIB)
    assert sample.disks[0].total_bytes == round(97.87 * GIB)
    assert sample.disks[0].free_bytes == round(51.55 * GIB)
    assert sample.interfaces[0].interface == "all"
    assert sample.interfaces[0].bytes_recv == 987654321
    assert sample.containers is not None and sample.containers[0].state == "running"
    # The top process by CPU, then the top one by memory (max_processes=1 keeps one of each).
    assert [p.name for p in sample.processes] == ["init", "python3"]
    # The legacy `memory` is RSS in MiB: bytes, never a percentage of the host's memory.
    python3 = sample.processes[1]
    assert python3.memory_rss_bytes == round(85.4 * 1024 * 1024) and python3.memory_percent is None
    assert python3.cpu_percent == 3.2 and python3.user == "www-data" and python3.status == "sleep"
    assert sample.cpu_cores == 1


def test_legacy_null_containers_means_no_docker() -> None:
    raw = LEGACY_METRICS.replace(b'"containers": [', b'"containers": null, "x": [')
    frame = AGENT_FRAME.validate_json(raw)
    assert isinstance(frame, LegacyMetricsFrame)
    assert frame.to_canonical(SERVER, NOW, 5).containers is None


def test_logs_levels_are_normalised_and_ids_are_deterministic() -> None:
    raw = (
        b'{"type": "logs", "seq": 3, "entries": [{"level": "warn", "message": "disk", "timestamp":'
        b' "2025-01-01T00:00:00+01:00", "source": "syslog"}, {"level": "INFO", "message": "ok",'
        b' "timestamp": "2025-01-01T00:00:01Z"}]}'
    )
    frame = AGENT_FRAME.validate_json(raw)
    assert isinstance(frame, LogsFrame)
    records = frame.to_canonical(SERVER, NOW)
    assert [r.level for r in records] == ["WARNING", "INFO"]
    assert records[0].time == datetime(2024, 12, 31, 23, tzinfo=UTC)
    assert records[0].entry_id == frame.to_canonical(SERVER, NOW)[0].entry_id
    assert records[0].entry_id != records[1].entry_id


@pytest.mark.parametrize(
    ("raw", "error_type"),
    [
        (b"{not json", "json_invalid"),
        (b'{"type": "nope"}', "union_tag_invalid"),
        (b'{"cpu_percent": 1}', "union_tag_not_found"),
        (
            b'{"type": "metrics", "cpu_percent": 101, "memory_percent": 1,'
            b' "timestamp": "2024-01-01T00:00:00Z"}',
            "less_than_equal",
        ),
        (
            b'{"type": "metrics", "cpu_percent": 1, "memory_percent": 1, "timestamp": "2024-01-01T00:00:00"}',
            "value_error",
        ),
    ],
)
def test_invalid_frames_fail_with_a_classifiable_error(raw: bytes, error_type: str) -> None:
    with pytest.raises(ValidationError) as info:
        AGENT_FRAME.validate_json(raw)
    assert info.value.errors()[0]["type"] == error_type


def test_command_replies_of_both_dialects() -> None:
    cid = uuid.uuid4()
    seed = AGENT_FRAME.validate_json(
        f'{{"type": "command_response", "command_id": "{cid}", "output": "x", "exit_code": 2}}'
    )
    assert isinstance(seed, CommandResponseFrame) and seed.command_id == cid
    legacy = AGENT_FRAME.validate_json(
        b'{"type": "command_result", "data": {"output": "hi", "exit_code": 0}, "request_id": "r1"}'
    )
    assert isinstance(legacy, LegacyCommandResultFrame) and legacy.request_id == "r1"
    logs = AGENT_FRAME.validate_json(
        b'{"type": "container_logs", "data": {"container_id": "c", "logs": null}, "request_id": "r2"}'
    )
    assert isinstance(logs, LegacyContainerLogsFrame) and logs.data.logs is None
    err = AGENT_FRAME.validate_json(b'{"type": "error", "message": "boom", "request_id": "r3"}')
    assert isinstance(err, LegacyErrorFrame) and err.request_id == "r3"
    auth = AGENT_FRAME.validate_json(b'{"type": "auth", "api_key": "k"}')
    assert isinstance(auth, AuthFrame)


def test_outbound_frames_round_trip_and_leave_out_absent_fields() -> None:
    stop = StopContainerFrame(request_id="r", container_id="c")
    assert stop.to_bytes() == b'{"type":"stop_container","request_id":"r","container_id":"c"}'
    assert SERVER_FRAME.validate_json(stop.to_bytes()) == stop
    error = ErrorFrame(message="Invalid message format", code="validation", detail="cpu_percent: missing")
    assert SERVER_FRAME.validate_json(error.to_bytes()) == error
    assert AckFrame(seq=5).to_bytes() == b'{"type":"ack","seq":5}'


def _legacy_with(processes: list[dict[str, object]]) -> LegacyMetricsFrame:
    return LegacyMetricsFrame.model_validate(
        {
            "type": "metrics",
            "data": {
                "timestamp": "2025-12-12T15:03:25+02:00",
                "cpu": {"usage_percent": 1, "cores": 1},
                "memory": {"total_gb": 1, "used_gb": 0.5, "available_gb": 0.5, "usage_percent": 50},
                "processes": processes,
            },
        }
    )


def test_top_processes_keep_the_top_n_by_cpu_and_by_memory_each_once() -> None:
    procs = [
        {"pid": i, "name": f"p{i}", "cpu": float(i % 10), "memory": float(1000 - i)} for i in range(1000)
    ]
    sample = _legacy_with(procs).to_canonical(SERVER, NOW, max_processes=3)
    pids = [p.pid for p in sample.processes]
    assert len(pids) == len(set(pids)) == 6
    assert all(p.cpu_percent == 9.0 for p in sample.processes[:3])  # CPU's first
    assert {p.pid for p in sample.processes[3:]} == {0, 1, 2}  # the largest RSS
    # A process at the top of both lists appears once; N = 0 keeps none.
    both = [
        {"pid": 1, "name": "a", "cpu": 9.0, "memory": 9.0},
        {"pid": 2, "name": "b", "cpu": 1.0, "memory": 1.0},
    ]
    assert [p.pid for p in _legacy_with(both).to_canonical(SERVER, NOW, max_processes=1).processes] == [1]
    assert _legacy_with(both).to_canonical(SERVER, NOW, max_processes=0).processes == ()
    with pytest.raises(ValidationError):
        _legacy_with([{"pid": 1, "name": "a", "memory": -1.0}])


def test_seed_processes_carry_rss_and_are_ranked_by_memory_share() -> None:
    base = orjson.loads(SEED_METRICS)
    base["top_processes"] = [
        {"pid": 1, "name": "busy", "cpu_percent": 90.0, "memory_percent": 1.0},
        {"pid": 2, "name": "big", "cpu_percent": 0.5, "memory_percent": 70.0, "memory_rss_bytes": 7 << 30},
        {"pid": 3, "name": "idle", "cpu_percent": 0.1, "memory_percent": 0.1},
    ]
    frame = SeedMetricsFrame.model_validate(base)
    sample = frame.to_canonical(SERVER, NOW, max_processes=1)
    assert [(p.name, p.memory_rss_bytes) for p in sample.processes] == [("busy", None), ("big", 7 << 30)]
    base["top_processes"][1]["memory_rss_bytes"] = -1
    with pytest.raises(ValidationError):
        SeedMetricsFrame.model_validate(base)


# --- validated once: the seed frame's fields are the canonical ones -------------------------------


def _fields(model: type[BaseModel], rename: dict[str, str] | None = None) -> list[tuple[object, ...]]:
    names = rename or {}
    return [
        (names.get(name, name), info.annotation, info.metadata, info.default)
        for name, info in model.model_fields.items()
    ]


def test_the_seed_frame_parts_have_the_canonical_types_so_one_validation_bounds_both() -> None:
    """What lets `canonical_bytes` skip the canonical models' validation: a bound loosened on the
    wire side (or tightened on the canonical side) fails here, not in persistence's dead letters."""
    assert _fields(SeedInterface) == _fields(InterfaceSample)
    assert _fields(SeedContainer) == _fields(ContainerSample)
    assert _fields(SeedProcess) == _fields(ProcessSample)
    disk = {"path": "mount", "total": "total_bytes", "used": "used_bytes", "free": "free_bytes"}
    assert _fields(SeedDisk, disk) == _fields(DiskSample)
    seed, canonical = SeedMetricsFrame.model_fields, MetricSample.model_fields
    pairs = {
        "seq": "seq",
        "cpu_percent": "cpu_percent",
        "memory_percent": "memory_percent",
        "memory_total": "memory_total_bytes",
        "memory_used": "memory_used_bytes",
        "uptime_seconds": "uptime_seconds",
        "cpu_cores": "cpu_cores",
    }
    for wire_name, name in pairs.items():
        assert (seed[wire_name].annotation, seed[wire_name].metadata) == (
            canonical[name].annotation,
            canonical[name].metadata,
        ), wire_name
    # The agent's time: the canonical UTC check, then the ingest window.
    assert seed["timestamp"].metadata[: len(canonical["time"].metadata)] == canonical["time"].metadata
    load = typing.get_args(typing.get_args(seed["load_average"].annotation)[0])
    assert len(load) == 3
    for part, n in zip(load, (1, 5, 15), strict=True):
        optional: object = typing.Optional[part]  # noqa: UP045
        assert optional == canonical[f"load{n}"].annotation
    for wire_name, name in (("disk_usage", "disks"), ("network", "interfaces"), ("containers", "containers")):
        assert seed[wire_name].metadata == canonical[name].metadata, wire_name
    assert seed["top_processes"].metadata == canonical["processes"].metadata


FULL_SEED = orjson.dumps(
    {
        "type": "metrics",
        "seq": 2**63 - 1,
        "timestamp": "2025-12-12T15:03:25+02:00",  # an offset: normalised to UTC, no microseconds
        "cpu_percent": 100,
        "memory_percent": 0.5,
        "memory_total": 2**63 - 1,
        "memory_used": 0,
        "load_average": [1e300, 0, 0.1],
        "uptime_seconds": 12,
        "cpu_cores": 2**31 - 1,
        "disk_usage": [{"path": "/ü", "total": 1, "used": 1, "free": 0, "percent": 100.0}],
        "network": [{"interface": "eth0", "bytes_sent": 1, "bytes_recv": 2, "errors_out": 3}],
        "containers": [{"id": "a", "name": "b", "state": "running", "cpu_percent": 250.0}],
        "top_processes": [
            {"pid": n, "name": f"p{n}", "cpu_percent": n / 3, "memory_rss_bytes": 10 * n, "user": "u"}
            for n in range(30)
        ],
    }
)


@pytest.mark.parametrize("raw", [SEED_METRICS, FULL_SEED], ids=["small", "full"])
@pytest.mark.parametrize(
    "received_at", [NOW, datetime(2025, 12, 12, 13, 3, 30, 123456, tzinfo=UTC)], ids=["whole", "micro"]
)
def test_canonical_bytes_are_the_validated_samples_bytes(raw: bytes, received_at: datetime) -> None:
    frame = AGENT_FRAME.validate_json(raw)
    assert isinstance(frame, SeedMetricsFrame)
    fast = frame.canonical_bytes(SERVER, received_at, max_processes=4)
    validated = frame.to_canonical(SERVER, received_at, max_processes=4)
    assert fast == validated.to_bytes()
    assert MetricSample.model_validate_json(fast) == validated


@pytest.mark.parametrize("seq", [0, 7, 2**63 - 1])
def test_ack_bytes_are_the_ack_frames_bytes(seq: int) -> None:
    assert ack_bytes(seq) == AckFrame(seq=seq).to_bytes()
