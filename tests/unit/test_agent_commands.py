"""Remote commands: refused unless enabled and allowlisted, no shell, timed out, output capped,
measured; Docker actions without a daemon fail clearly."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from fleetpulse_agent.commands import REFUSED_EXIT, TIMED_OUT_EXIT, CommandPolicy, DockerActions, run_command

PY = sys.executable


def policy(*patterns: str, enabled: bool = True, timeout: float = 10.0, cap: int = 4096) -> CommandPolicy:
    return CommandPolicy(enabled=enabled, allowlist=patterns, timeout_seconds=timeout, max_output_bytes=cap)


async def test_refused_when_commands_are_disabled() -> None:
    out = await run_command(policy(r".*", enabled=False), "echo hi")
    assert out.exit_code == REFUSED_EXIT
    assert out.error is not None and "disabled" in out.error
    assert out.output == ""


async def test_refused_when_not_allowlisted() -> None:
    out = await run_command(policy(r"uptime", r"df -h"), "rm -rf /tmp/x")
    assert out.exit_code == REFUSED_EXIT
    assert out.error == "command not in this agent's allowlist"


async def test_the_allowlist_matches_the_whole_command() -> None:
    # "echo hi" is allowed, "echo hi; id" is not: a pattern never matches a prefix only.
    out = await run_command(policy(r"echo hi"), "echo hi; id")
    assert out.exit_code == REFUSED_EXIT


async def test_allowlisted_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "should-not-exist"
    out = await run_command(policy(r"echo .*"), f"echo hello $(touch {marker})")
    assert out.exit_code == 0
    assert out.output.startswith("hello $(touch")  # printed literally, never interpreted
    assert not marker.exists()
    assert out.duration_ms >= 0 and out.error is None


async def test_exit_code_and_stderr_are_reported() -> None:
    out = await run_command(
        policy(r".*"), f"{PY} -c \"import sys; print('bad', file=sys.stderr); sys.exit(3)\""
    )
    assert out.exit_code == 3
    assert "bad" in out.output


async def test_a_long_command_is_timed_out_and_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid));"
        "print('started', flush=True); time.sleep(60)"
    )
    out = await run_command(policy(r".*", timeout=1.5), f'{PY} -c "{script}"')
    assert out.timed_out and out.exit_code == TIMED_OUT_EXIT
    assert out.error is not None and "timed out after 1.5 s" in out.error
    assert "started" in out.output
    assert out.duration_ms >= 1500
    child = int(pidfile.read_text())
    # The grandchild was in the command's process group: it dies too (gone, or a zombie).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(child):
        await asyncio.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\tZ (zombie)" not in status


async def test_output_is_capped_and_an_endless_printer_is_stopped() -> None:
    out = await run_command(policy(r".*", cap=1000, timeout=30), f"{PY} -c \"while True: print('x' * 100)\"")
    assert out.truncated and not out.timed_out
    assert len(out.output.encode()) == 1000
    assert out.error is not None and "1000 bytes" in out.error


async def test_a_burst_past_the_cap_is_not_mistaken_for_a_timeout() -> None:
    # Several endless printers at once: each is capped and reported as capped, never as timed
    # out (a capped command's reaping once ran into the timeout on a loaded machine).
    printer = f"{PY} -c \"import sys; [sys.stdout.write('y' * 65536) for _ in iter(int, 1)]\""
    outs = await asyncio.gather(*(run_command(policy(r".*", cap=2000, timeout=8), printer) for _ in range(8)))
    for out in outs:
        assert out.truncated and not out.timed_out, out.error
        assert len(out.output.encode()) == 2000 and out.exit_code != TIMED_OUT_EXIT


async def test_missing_program_is_a_clear_failure() -> None:
    out = await run_command(policy(r".*"), "no-such-program-fleetpulse --x")
    assert out.exit_code == 127
    assert out.error is not None and "cannot run" in out.error


async def test_docker_action_without_a_daemon_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    outcome = await DockerActions(enabled=True, timeout=3).run("restart", "web")
    assert not outcome.success
    assert outcome.message.startswith("Docker daemon not reachable")


async def test_docker_actions_are_off_by_default() -> None:
    outcome = await DockerActions(enabled=False).run("stop", "web")
    assert not outcome.success and "disabled" in outcome.message
