"""A newcomer's first minutes, exactly: `make run`, then `fleetpulse watch <this machine>` shows
backfilled and then live data within 30 seconds, then Ctrl-C stops everything with no process left.

The run is isolated from any other on the machine: its own database, topic prefix, ports, faust
app id and run folder; and it leaves the shared services running (FLEETPULSE_RUN_KEEP_SERVICES).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.support.topics import sub_prefix

ROOT = Path(__file__).resolve().parents[2]
# The acceptance criterion: after `make run` is ready, watch shows history then live within this.
WATCH_WITHIN_SECONDS = 30.0
# `make run` includes the cached set-up steps and starting every deployable.
READY_WITHIN_SECONDS = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lines:
    """The output of a child process, line by line, read on a thread (never blocking the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def close(self, proc: subprocess.Popen[str]) -> None:
        self._thread.join(timeout=30)  # EOF once make and everything it started have exited
        assert proc.stdout is not None
        proc.stdout.close()

    def until(self, marker: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return False
            self.lines.append(line)
            if marker in line:
                return True
        return False

    def text(self) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "\n".join(self.lines)


@pytest.fixture
def run_database(postgres_admin_dsn: str) -> Iterator[str]:
    name = f"fp_makerun_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_admin_dsn.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_make_run_then_watch_shows_history_then_live_and_ctrl_c_stops_everything(
    run_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    run_id = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if k not in ("FLEETPULSE_TOPIC_PREFIX", "FLEETPULSE_RUN_DIR")}
    env.update(
        FLEETPULSE_DATABASE_URL=run_database,
        FLEETPULSE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        FLEETPULSE_TOPIC_PREFIX=sub_prefix("makerun"),
        FLEETPULSE_TOPIC_PARTITIONS="4",
        FLEETPULSE_API_PORT=str(free_port()),
        FLEETPULSE_INGEST_PORT=str(free_port()),
        FLEETPULSE_PROCESSORS_WEB_PORT=str(free_port()),
        FLEETPULSE_PROCESSORS_APP_ID=f"makerun-{run_id}",
        FLEETPULSE_RUN_DIR=str(tmp_path / "run"),
        FLEETPULSE_RUN_KEEP_SERVICES="1",  # the services are shared with every other test
        FLEETPULSE_RUN_AGENTS="2",
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # no `fleetpulse login` session of this machine's user
    )
    # Its own process group, as a terminal's foreground job: Ctrl-C is SIGINT to the group.
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = Lines(make)
    family: list[int] = []
    try:
        assert out.until("FleetPulse is running", READY_WITHIN_SECONDS), out.text()
        assert "first sample stored" in out.text(), out.text()
        family = [p.pid for p in psutil.Process(make.pid).children(recursive=True)]
        assert len(family) >= 5, out.text()  # the supervisor, the deployables and the agents

        this_machine = socket.gethostname().split(".")[0]
        started = time.monotonic()
        watch = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "fleetpulse"), "watch", this_machine, "--max-live", "1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WATCH_WITHIN_SECONDS + 30,
        )
        took = time.monotonic() - started
        shown = watch.stdout
        assert watch.returncode == 0, watch.stdout + watch.stderr
        assert took < WATCH_WITHIN_SECONDS, f"watch took {took:.1f} s:\n{shown}"
        history = shown.find("[history] metrics")
        seam = shown.find("-- metrics: end of history, live from here --")
        live = shown.find("[live   ] metrics")
        assert 0 <= history < seam < live, shown

        # Ctrl-C, as a terminal sends it: SIGINT to the whole foreground process group.
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=90)
        deadline = time.monotonic() + 90
        while alive(family) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(family) == [], f"still running after Ctrl-C: {alive(family)}\n{out.text()}"
        assert "[run] stopped" in out.text(), out.text()
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(timeout=30)
        for pid in alive(family):
            os.kill(pid, signal.SIGKILL)
        sys.stdout.write(out.text()[-4000:] + "\n")
        out.close(make)
