"""The deployables of a chaos run: two ingest processes, two processors workers, two API
processes, each a real child process that the run kills with SIGKILL and starts again."""

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
import psutil

from .errors import ChaosError
from .services import ROOT, free_port


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    health_url: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n==== start {self.starts + 1} at {time.strftime('%H:%M:%S')} ====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, exactly as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    async def healthy(self, within: float = 120.0) -> float:
        started = time.monotonic()
        async with httpx.AsyncClient() as client:
            while time.monotonic() - started < within:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise ChaosError(f"{self.name} exited ({code}); see {self.log}")
                try:
                    if (await client.get(self.health_url, timeout=2)).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise ChaosError(f"{self.name} did not answer {self.health_url} within {within:.0f} s")

    def local_ports(self) -> set[int]:
        """The local TCP ports of the process's connections (to find its database sessions)."""
        if self.pid is None:
            return set()
        try:
            return {c.laddr.port for c in psutil.Process(self.pid).net_connections("tcp") if c.laddr}
        except psutil.Error:
            return set()


@dataclass
class Deployables:
    ingest: list[Child] = field(default_factory=list)
    workers: list[Child] = field(default_factory=list)
    apis: list[Child] = field(default_factory=list)

    @property
    def all(self) -> list[Child]:
        return [*self.ingest, *self.workers, *self.apis]

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM to all at once, then SIGKILL to whatever still runs after `grace` seconds."""
        running = [c.proc for c in self.all if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def build(
    base_env: dict[str, str], state: Path, logs: Path, *, app_id: str, replicas: int = 2
) -> Deployables:
    """Two of each deployable (ingest ids, ports and faust data folders their own)."""
    py = sys.executable
    out = Deployables()
    for i in range(1, replicas + 1):
        port = free_port()
        env = {
            **base_env,
            "FLEETPULSE_INGEST_HOST": "127.0.0.1",
            "FLEETPULSE_INGEST_PORT": str(port),
            "FLEETPULSE_INGEST_INGEST_ID": f"chaos-ingest-{i}",
            # Presence refreshes and key rechecks often, so a takeover is seen quickly.
            "FLEETPULSE_INGEST_PRESENCE_INTERVAL": "2",
        }
        out.ingest.append(
            Child(
                f"ingest-{i}",
                [py, "-m", "ingest"],
                env,
                logs / f"ingest-{i}.log",
                f"http://127.0.0.1:{port}/health",
                port,
            )
        )
    for i in range(1, replicas + 1):
        port = free_port()
        worker_state = state / f"worker-{i}"
        worker_state.mkdir(parents=True, exist_ok=True)
        env = {
            **base_env,
            # A faust data folder per worker (the secrets are given explicitly to every process).
            "FLEETPULSE_STATE_DIR": str(worker_state),
            "FLEETPULSE_PROCESSORS_APP_ID": app_id,
            "FLEETPULSE_PROCESSORS_WEB_PORT": str(port),
            "FLEETPULSE_PROCESSORS_BATCH_MAX_RECORDS": "200",
            "FLEETPULSE_PROCESSORS_BATCH_WITHIN_SECONDS": "0.3",
            "FLEETPULSE_PROCESSORS_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "FLEETPULSE_PROCESSORS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "FLEETPULSE_PROCESSORS_DB_RETRY_MAX_SECONDS": "2",
            "FLEETPULSE_PROCESSORS_ALERTS_SESSION_TIMEOUT_SECONDS": "6",
            "FLEETPULSE_PROCESSORS_ALERTS_HEARTBEAT_INTERVAL_SECONDS": "1",
        }
        out.workers.append(
            Child(
                f"worker-{i}",
                [py, "-m", "stream_processors", "worker", "--loglevel", "warn"],
                env,
                logs / f"worker-{i}.log",
                f"http://127.0.0.1:{port}/health",
                port,
            )
        )
    for i in range(1, replicas + 1):
        port = free_port()
        env = {
            **base_env,
            "FLEETPULSE_API_HOST": "127.0.0.1",
            "FLEETPULSE_API_PORT": str(port),
            # The run's sockets keep one token for the whole run (a full run lasts over 15 min).
            "FLEETPULSE_API_ACCESS_TOKEN_MINUTES": "240",
        }
        out.apis.append(
            Child(
                f"api-{i}",
                [py, "-m", "api"],
                env,
                logs / f"api-{i}.log",
                f"http://127.0.0.1:{port}/health",
                port,
            )
        )
    return out


def child_env(services_env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
    env.update(services_env)
    env.update(extra)
    return env
