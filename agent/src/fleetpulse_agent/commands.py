"""Remote commands, safely: off by default, allowlisted, timed out, output capped, measured.

A shell command runs only if the operator enabled commands in this agent's own configuration and
the whole command matches one of its allowlist patterns. It is split like a shell would
(`shlex`) but executed without a shell, so `;`, `|`, `$( )` and redirections are not interpreted.
It runs as the agent's own user, in a new process group that is killed whole on timeout or when
its output passes the cap. Docker actions go through the Docker Engine API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from .errors import TIMEOUTS, CommandRefused

TIMED_OUT_EXIT = 124  # what coreutils' timeout(1) answers
REFUSED_EXIT = 126  # "found but not permitted", as a shell says


@dataclass(frozen=True)
class CommandOutcome:
    output: str
    exit_code: int
    duration_ms: int
    error: str | None = None
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class CommandPolicy:
    enabled: bool
    allowlist: tuple[str, ...]
    timeout_seconds: float
    max_output_bytes: int

    def check(self, command: str) -> list[str]:
        """The argv to run, or CommandRefused saying why not."""
        if not self.enabled:
            raise CommandRefused(
                "commands are disabled on this agent (set commands_enabled = true in its configuration)"
            )
        if not any(re.fullmatch(p, command) for p in self.allowlist):
            raise CommandRefused("command not in this agent's allowlist")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise CommandRefused(f"command cannot be parsed: {exc}") from exc
        if not argv:
            raise CommandRefused("empty command")
        return argv


async def run_command(policy: CommandPolicy, command: str) -> CommandOutcome:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        argv = policy.check(command)
    except CommandRefused as exc:
        return CommandOutcome(output="", exit_code=REFUSED_EXIT, duration_ms=elapsed(), error=str(exc))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except OSError as exc:
        return CommandOutcome(output="", exit_code=127, duration_ms=elapsed(), error=f"cannot run: {exc}")
    assert proc.stdout is not None
    buf = bytearray()
    truncated = timed_out = False

    async def read_capped() -> None:
        # Reads to EOF in every case: past the cap the rest is discarded, not left in the pipe.
        # On Python 3.11 `proc.wait()` returns only once the pipes are closed, so output left
        # unread would make a killed command look like one that timed out.
        nonlocal truncated
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            room = max(0, policy.max_output_bytes - len(buf))
            buf.extend(chunk[:room])
            if len(chunk) > room and not truncated:
                truncated = True
                _kill_group(proc)  # enough: a command that prints without end must not run on

    try:
        await asyncio.wait_for(read_capped(), policy.timeout_seconds)
        await asyncio.wait_for(proc.wait(), max(0.1, policy.timeout_seconds - (time.monotonic() - started)))
    except TIMEOUTS:
        # A capped command was killed by us: reaping it late (a loaded machine) is no timeout.
        timed_out = not truncated
        _kill_group(proc)
    finally:
        if proc.returncode is None:
            _kill_group(proc)
        # The group is dead: drain what is left in the pipe, then reap, so no zombie and no open
        # transport is left. Both bounded: a child that escaped the group may hold the pipe open.
        with contextlib.suppress(*TIMEOUTS):
            await asyncio.wait_for(_discard(proc), 5)
        with contextlib.suppress(*TIMEOUTS):
            await asyncio.wait_for(proc.wait(), 5)
    output = buf.decode("utf-8", "replace")
    error = None
    if timed_out:
        error = f"timed out after {policy.timeout_seconds:g} s; the command was killed"
    elif truncated:
        error = f"output passed {policy.max_output_bytes} bytes; the command was stopped and its output cut"
    code = TIMED_OUT_EXIT if timed_out else (proc.returncode if proc.returncode is not None else -1)
    return CommandOutcome(
        output=output,
        exit_code=code,
        duration_ms=elapsed(),
        error=error,
        timed_out=timed_out,
        truncated=truncated,
    )


async def _discard(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(65536):
        pass


def check_unix_socket() -> None:
    """Fail with a clear error if the Docker daemon's unix socket does not answer a connect.

    Checked before the SDK tries, because the SDK leaks its socket when that connect fails (and
    because importing the SDK costs memory an agent without Docker need not spend).
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {path}: {exc.strerror or exc}") from exc


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class DockerOutcome:
    success: bool
    message: str
    logs: list[str] | None = None


class DockerActions:
    """start / stop / restart / logs through the Docker Engine API (the `docker` SDK).

    Blocking SDK calls run on a worker thread. Without a reachable daemon every action answers a
    clear failure instead of raising.
    """

    def __init__(self, enabled: bool, timeout: float = 30.0) -> None:
        self.enabled = enabled
        self.timeout = timeout

    def _client(self) -> Any:
        import docker

        client = docker.from_env(timeout=self.timeout)
        try:
            client.ping()
        except BaseException:
            client.close()  # its connection pool holds a socket
            raise
        return client

    async def run(self, action: str, container_id: str, tail: int | None = None) -> DockerOutcome:
        if not self.enabled:
            return DockerOutcome(
                False,
                "Docker actions are disabled on this agent "
                "(set docker_actions_enabled = true in its configuration)",
            )
        return await asyncio.to_thread(self._run, action, container_id, tail)

    def _run(self, action: str, container_id: str, tail: int | None) -> DockerOutcome:
        try:
            check_unix_socket()
        except ConnectionError as exc:
            return DockerOutcome(False, f"Docker daemon not reachable: {exc}")
        try:
            import docker.errors
        except ImportError:
            return DockerOutcome(False, "Docker is not available: the docker package is not installed")
        try:
            client = self._client()
        except docker.errors.DockerException as exc:
            return DockerOutcome(False, f"Docker daemon not reachable: {exc}")
        try:
            container = client.containers.get(container_id)
            if action == "start":
                container.start()
                return DockerOutcome(True, "Container started")
            if action == "stop":
                container.stop()
                return DockerOutcome(True, "Container stopped")
            if action == "restart":
                container.restart()
                return DockerOutcome(True, "Container restarted")
            if action == "logs":
                raw = container.logs(tail=tail or 100)
                lines = raw.decode("utf-8", "replace").splitlines() if isinstance(raw, bytes) else []
                return DockerOutcome(True, f"{len(lines)} line(s)", logs=lines)
            return DockerOutcome(False, f"unknown Docker action {action!r}")
        except docker.errors.NotFound:
            return DockerOutcome(False, f"no such container: {container_id}")
        except docker.errors.DockerException as exc:
            return DockerOutcome(False, f"Docker {action} failed: {exc}")
        finally:
            client.close()
