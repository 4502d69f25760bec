"""The agent's own wire frames (fleetpulse_agent/wire.py): the shared vectors, its encoder against
the server's models, and its decoder of the server's frames."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleetpulse_agent import wire
from fleetpulse_agent.errors import WireError
from schemas.agent_wire import AGENT_FRAME, SERVER_FRAME, AckFrame, CommandFrame, ErrorFrame, SeedMetricsFrame
from tests.support.vectors import ids, load

AGENT_CASES = load("agent_frames")
SERVER_CASES = load("server_frames")
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("case", AGENT_CASES, ids=ids(AGENT_CASES))
def test_agent_frames_are_checked_as_the_server_checks_them(case: dict[str, Any]) -> None:
    found = wire.problems(case["frame"])
    assert (found == []) is case["valid"], found


@pytest.mark.parametrize("case", SERVER_CASES, ids=ids(SERVER_CASES))
def test_server_frames_decode_as_the_vectors_say(case: dict[str, Any]) -> None:
    decoded = wire.decode_server_frame(json.dumps(case["frame"]))
    if not case["valid"]:
        assert decoded is None
        return
    expect = dict(case["agent"])
    assert type(decoded).__name__ == expect.pop("kind")
    for name, value in expect.items():
        assert getattr(decoded, name) == value


def test_what_the_agent_encodes_is_what_the_server_decodes() -> None:
    frame = wire.MetricsFrame(
        timestamp=T0,
        cpu_percent=12.5,
        memory_percent=40.0,
        disk_usage=[wire.Disk(path="/", total=100, used=40, free=60, percent=40.0)],
        network=[wire.Interface(interface="eth0", bytes_sent=1, bytes_recv=2, packets_sent=3)],
        load_average=(0.5, 0.25, 0.1),
        containers=[wire.Container(id="abc", name="web", state="running")],
        top_processes=[
            wire.Process(pid=1, name="init", cpu_percent=0.5, memory_percent=1.5, memory_rss_bytes=4096)
        ],
    ).with_seq(7)
    server = AGENT_FRAME.validate_json(frame.to_bytes())
    assert isinstance(server, SeedMetricsFrame)
    assert server.seq == 7 and server.timestamp == T0 and server.load_average == (0.5, 0.25, 0.1)
    assert server.network[0].packets_sent == 3 and server.network[0].errors_in is None
    assert server.containers is not None and server.containers[0].state == "running"
    assert server.top_processes[0].memory_percent == 1.5 and server.top_processes[0].memory_rss_bytes == 4096
    logs = wire.LogsFrame(entries=[wire.LogEntry("WARN", "slow", T0 + timedelta(seconds=1), "app")]).with_seq(
        8
    )
    decoded = AGENT_FRAME.validate_json(logs.to_bytes())
    assert decoded.type == "logs" and decoded.entries[0].level == "WARNING"
    reply = wire.CommandResponseFrame(command_id=str(uuid.uuid4()), exit_code=0, output="ok", duration_ms=3)
    assert AGENT_FRAME.validate_json(reply.to_bytes()).type == "command_response"


def test_a_frame_the_server_would_refuse_is_never_encoded() -> None:
    bad = wire.MetricsFrame(timestamp=T0, cpu_percent=180.0, memory_percent=1.0)
    with pytest.raises(WireError, match="cpu_percent"):
        bad.to_bytes()
    naive = dataclasses.replace(bad, cpu_percent=1.0, timestamp=datetime(2026, 1, 1))
    with pytest.raises(WireError, match="timestamp"):
        naive.to_bytes()
    with pytest.raises(WireError):
        wire.MetricsFrame(timestamp=T0, cpu_percent=float("nan"), memory_percent=1.0).to_bytes()


def test_the_servers_own_frames_decode() -> None:
    cid = uuid.uuid4()
    cmd = wire.decode_server_frame(CommandFrame(command_id=cid, command="uptime").to_bytes())
    assert cmd == wire.Command(command_id=str(cid), command="uptime")
    assert wire.decode_server_frame(AckFrame(seq=5).to_bytes()) == wire.Ack(5)
    err = wire.decode_server_frame(ErrorFrame(message="m", code="retry", seq=4, retry=True).to_bytes())
    assert err == wire.ErrorReply("m", "retry", None, 4, True)
    assert SERVER_FRAME.validate_json(AckFrame(seq=5).to_bytes())
    for junk in (b"not json", b"[1,2]", b'{"no": "type"}'):
        assert wire.decode_server_frame(junk) is None
