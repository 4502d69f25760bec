"""`make run`: the whole system on this machine, supervised in the foreground.

Starts the deployables as child processes once the services are up (the Makefile starts them),
the database is migrated and the topics exist; waits until each answers its health check; prints
where everything listens. Ctrl-C (or SIGTERM) stops the children, then the services, so nothing is
left running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from schemas.settings import CommonSettings

from . import migrate, topics

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None


def children(settings: CommonSettings) -> list[Child]:
    py = sys.executable
    api_port = int(os.environ.get("FLEETPULSE_API_PORT", "8000"))
    ingest_port = int(os.environ.get("FLEETPULSE_INGEST_PORT", "8001"))
    processors_port = int(os.environ.get("FLEETPULSE_PROCESSORS_WEB_PORT", "6066"))
    return [
        Child("ingest", [py, "-m", "ingest"], f"http://127.0.0.1:{ingest_port}/health"),
        Child("api", [py, "-m", "api"], f"http://127.0.0.1:{api_port}/health"),
        Child("processors", [py, "-m", "stream_processors"], f"http://127.0.0.1:{processors_port}/health"),
    ]


def wait_healthy(child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.poll() is not None:
            raise SystemExit(
                f"{child.name} exited with code {child.proc.returncode}; see .state/logs/{child.name}.log"
            )
        try:
            if child.health_url is None or httpx.get(child.health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{child.name} did not answer {child.health_url} within {timeout:.0f} s")


def stop_all(running: list[Child]) -> None:
    # Reverse start order: producers of data stop before what consumes it.
    for child in reversed(running):
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    for child in reversed(running):
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
    subprocess.run([str(ROOT / "infra" / "services.sh"), "stop"], check=False)  # noqa: S603 - our script


def main() -> None:
    settings = CommonSettings()
    migrate.apply(settings.database_url)
    asyncio.run(
        topics.ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, settings.topic_partitions)
    )
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    running: list[Child] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for child in children(settings):
            out = (logs / f"{child.name}.log").open("ab")
            child.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                child.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **child.env}, cwd=ROOT
            )
            running.append(child)
        for child in running:
            wait_healthy(child)
            print(f"  {child.name:<11} up   {child.health_url}   (log: {logs / (child.name + '.log')})")
        print("\nFleetPulse is running. Ctrl-C stops everything.")
        while not stopping:
            for child in running:
                if child.proc is not None and child.proc.poll() is not None:
                    print(f"{child.name} exited with code {child.proc.returncode}; stopping")
                    stopping = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping...")
        stop_all(running)


if __name__ == "__main__":
    main()
