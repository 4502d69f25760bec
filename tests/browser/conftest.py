"""The real stack for the browser suite: the API with ingest in one process (`ops.server`) and the stream
processors (persistence, rollups, the alert engine), on free ports, in a database and a topic
namespace of their own; the dashboard built from web/ (`make test`'s set-up builds it)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ops.topics import ensure_topics
from tests.support.topics import sub_prefix

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FLEETPULSE_CHROMIUM", "/usr/bin/chromium"))
# Screenshots of each step: a git-ignored folder, kept after the run (CI keeps it as an artifact).
ARTIFACTS = Path(os.environ.get("FLEETPULSE_BROWSER_ARTIFACTS", str(ROOT / "build" / "browser")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    base_url: str
    agent_url: str
    env: dict[str, str]
    logs: Path


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {within:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    if not (ROOT / "web" / "dist" / "index.html").exists() or not (ROOT / "web" / "node_modules").exists():
        pytest.fail("the dashboard is not built: `make web` (make test's set-up does it)")
    tmp = tmp_path_factory.mktemp("browser-stack")
    prefix = sub_prefix("browser")
    asyncio.run(ensure_topics(kafka_bootstrap, prefix, 4))
    api_port, processors_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
    env.update(
        FLEETPULSE_ENV="test",
        FLEETPULSE_JWT_SECRET=secrets.token_urlsafe(48),
        FLEETPULSE_KEY_PEPPER=secrets.token_urlsafe(48),
        FLEETPULSE_DATABASE_URL=database_url,
        FLEETPULSE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        FLEETPULSE_TOPIC_PREFIX=prefix,
        FLEETPULSE_TOPIC_PARTITIONS="4",
        FLEETPULSE_STATE_DIR=str(tmp / "state"),
        FLEETPULSE_API_PORT=str(api_port),
        FLEETPULSE_PROCESSORS_WEB_PORT=str(processors_port),
        FLEETPULSE_PROCESSORS_APP_ID=f"browser-{uuid.uuid4().hex[:8]}",
    )
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    for name, argv, health in (
        ("api", [sys.executable, "-m", "ops.server"], f"http://127.0.0.1:{api_port}/health"),
        (
            "processors",
            [sys.executable, "-m", "stream_processors"],
            f"http://127.0.0.1:{processors_port}/health",
        ),
    ):
        log = tmp / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        _wait(health, proc, log)
    try:
        yield Stack(
            base_url=f"http://127.0.0.1:{api_port}",
            agent_url=f"ws://127.0.0.1:{api_port}/api/v1/agents/ws",
            env=env,
            logs=tmp,
        )
    finally:
        for proc, _ in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
