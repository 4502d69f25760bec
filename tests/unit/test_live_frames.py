"""Frames: derived network rates (resets have none), the wire contract's close-code ranges and
strict client frames."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from api.live.frames import RateState, metrics_text
from api.live.settings import LiveSettings
from schemas.canonical import InterfaceSample, MetricSample, ProcessSample
from schemas.frontend_wire import CLIENT_FRAME, SERVER_FRAME, AuthFrame, CloseCode, MetricsFrame, PingFrame

T = datetime(2026, 1, 1, tzinfo=UTC)


def _sample(seconds: float, sent: int, recv: int) -> MetricSample:
    t = T + timedelta(seconds=seconds)
    return MetricSample(
        server_id=uuid.UUID(int=1),
        time=t,
        received_at=t,
        cpu_percent=1,
        memory_percent=2,
        interfaces=(InterfaceSample(interface="eth0", bytes_sent=sent, bytes_recv=recv),),
    )


def metrics_frame(sample: MetricSample, rates: RateState, offset: int | None) -> MetricsFrame:
    """Build the text as the hub does, and parse it with the wire contract."""
    frame = SERVER_FRAME.validate_json(metrics_text(sample, rates, 3, offset))
    assert isinstance(frame, MetricsFrame)
    return frame


def test_frames_follow_the_wire_contract() -> None:
    frame = metrics_frame(_sample(0, 1, 2), RateState(), 42)
    assert frame.position is not None and (frame.position.partition, frame.position.offset) == (3, 42)
    assert frame.data.timestamp == T and frame.data.cpu_percent == 1 and not frame.history


def test_live_metrics_frames_carry_the_samples_processes() -> None:
    procs = (
        ProcessSample(pid=1, name="db", cpu_percent=50.0, memory_rss_bytes=1 << 30, user="pg"),
        ProcessSample(pid=2, name="web", cpu_percent=1.0, memory_percent=12.5, status="running"),
    )
    frame = metrics_frame(_sample(0, 1, 2).model_copy(update={"processes": procs}), RateState(), 1)
    assert frame.data.processes is not None
    assert [(p.pid, p.name, p.memory_rss_bytes, p.memory_percent) for p in frame.data.processes] == [
        (1, "db", 1 << 30, None),
        (2, "web", None, 12.5),
    ]
    assert frame.data.processes[0].user == "pg" and frame.data.processes[1].status == "running"
    assert metrics_frame(_sample(0, 1, 2), RateState(), 1).data.processes is None  # none carried


def test_rates_come_from_the_previous_sample_and_a_reset_has_none() -> None:
    rates = RateState()
    first = metrics_frame(_sample(0, 1000, 5000), rates, None)
    second = metrics_frame(_sample(10, 2000, 7000), rates, None)
    reset = metrics_frame(_sample(20, 100, 100), rates, None)
    after = metrics_frame(_sample(30, 1100, 600), rates, None)
    assert first.data.network.bytes_sent_per_second is None
    assert second.data.network.bytes_sent_per_second == 100.0
    assert second.data.interfaces[0].bytes_recv_per_second == 200.0
    assert reset.data.network.bytes_sent_per_second is None  # never negative
    assert after.data.network.bytes_recv_per_second == 50.0


def test_an_older_replayed_sample_does_not_rewind_the_rate_state() -> None:
    rates = RateState()
    metrics_frame(_sample(10, 2000, 2000), rates, None)
    metrics_frame(_sample(5, 1000, 1000), rates, None)
    later = metrics_frame(_sample(20, 3000, 3000), rates, None)
    assert later.data.network.bytes_sent_per_second == 100.0


def _host(seconds: float, eth: int, lo: int, veth: int) -> MetricSample:
    t = T + timedelta(seconds=seconds)
    interfaces = tuple(
        InterfaceSample(interface=name, bytes_sent=n, bytes_recv=2 * n)
        for name, n in (("eth0", eth), ("lo", lo), ("veth3a1f", veth), ("docker0", veth), ("br-5e2", veth))
    )
    return MetricSample(
        server_id=uuid.UUID(int=1),
        time=t,
        received_at=t,
        cpu_percent=1,
        memory_percent=2,
        interfaces=interfaces,
    )


def test_totals_leave_out_loopback_and_virtual_interfaces_but_each_keeps_its_rates() -> None:
    rates = RateState()
    metrics_frame(_host(0, 0, 0, 0), rates, None)
    frame = metrics_frame(_host(10, 1000, 50_000, 7000), rates, None)
    assert frame.data.network.bytes_sent_per_second == 100.0  # eth0 alone
    assert frame.data.network.bytes_recv_per_second == 200.0
    by_name = {i.interface: i.bytes_sent_per_second for i in frame.data.interfaces}
    assert by_name == {"eth0": 100.0, "lo": 5000.0, "veth3a1f": 700.0, "docker0": 700.0, "br-5e2": 700.0}


def test_the_excluded_interfaces_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPULSE_API_LIVE_NETWORK_TOTAL_EXCLUDE", '["veth*"]')
    settings = LiveSettings()
    assert settings.network_total_exclude == ("veth*",)
    rates = RateState(exclude=settings.network_total_exclude)
    metrics_frame(_host(0, 0, 0, 0), rates, None)
    frame = metrics_frame(_host(10, 1000, 1000, 1000), rates, None)
    # eth0 + lo + docker0 + br-5e2 count now; only the veth is left out.
    assert frame.data.network.bytes_sent_per_second == 400.0
    assert "lo" in LiveSettings.model_fields["network_total_exclude"].default


def test_close_codes_split_into_may_reconnect_and_terminal() -> None:
    may = {c for c in CloseCode if c.may_reconnect}
    assert may == {
        CloseCode.TOKEN_EXPIRED,
        CloseCode.AUTH_TIMEOUT,
        CloseCode.SLOW_CONSUMER,
        CloseCode.UNAVAILABLE,
    }
    assert all(4400 <= c < 4500 for c in set(CloseCode) - may)


def test_client_frames_are_strict() -> None:
    auth = CLIENT_FRAME.validate_json(
        b'{"type": "auth", "token": "t", "resume": {"partition": 1, "offset": 5}}'
    )
    assert isinstance(auth, AuthFrame) and auth.resume is not None and auth.resume.offset == 5
    assert isinstance(CLIENT_FRAME.validate_json(b'{"type": "ping"}'), PingFrame)
    for bad in (b'{"type": "auth"}', b'{"type": "auth", "token": "t", "extra": 1}', b'{"type": "x"}', b"[]"):
        with pytest.raises(ValidationError):
            CLIENT_FRAME.validate_json(bad)
    with pytest.raises(ValidationError):  # strict: a number is not a token
        CLIENT_FRAME.validate_json(b'{"type": "auth", "token": 5}')


def test_live_settings_refuse_unusable_limits() -> None:
    with pytest.raises(ValidationError):
        LiveSettings(metrics_queue_frames=1)
    with pytest.raises(ValidationError):
        LiveSettings(auth_timeout_seconds=0)
    assert LiveSettings().log_lines == 200 and LiveSettings().metrics_window_seconds == 900
