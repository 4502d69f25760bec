"""A private Kafka broker and PostgreSQL cluster for one chaos run.

The run restarts both, so it never uses the shared ones: `infra/services.sh` starts its own pair
from a state folder of the run, on ports of its own. The broker's jars are not fetched again:
the run's `kafka/lib` links to the jars the main state folder already holds (`make setup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import wait
from ..errors import OpsError
from .errors import ChaosError

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "infra" / "services.sh"
KAFKA_START_SECONDS = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateServices:
    """Kafka and PostgreSQL of one run; `state` is deleted by `destroy()`."""

    state: Path
    jars: Path  # the main state folder's kafka/lib
    pg_port: int
    kafka_port: int
    controller_port: int
    kafka_heap: str = "512m"
    log: Path | None = None

    @classmethod
    def allocate(cls, state: Path, jars: Path, log: Path | None = None) -> PrivateServices:
        return cls(state, jars, free_port(), free_port(), free_port(), log=log)

    @property
    def database_url(self) -> str:
        return f"postgresql://fleetpulse@127.0.0.1:{self.pg_port}/fleetpulse"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
        env.update(
            FLEETPULSE_STATE_DIR=str(self.state),
            FLEETPULSE_PG_PORT=str(self.pg_port),
            FLEETPULSE_KAFKA_PORT=str(self.kafka_port),
            FLEETPULSE_KAFKA_CONTROLLER_PORT=str(self.controller_port),
            FLEETPULSE_KAFKA_HEAP=self.kafka_heap,
        )
        return env

    def _script(self, *functions: str, timeout: float = 240.0) -> float:
        """Run functions of infra/services.sh (sourced) against this run's state; seconds taken."""
        script = f'source "{SERVICES}"; ' + "; ".join(functions)
        started = time.monotonic()
        out = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            done = subprocess.run(  # noqa: S603 - our own script
                ["bash", "-c", f"set -euo pipefail; {script}"],  # noqa: S607
                env=self.env(),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        if done.returncode != 0:
            raise ChaosError(f"infra/services.sh {' '.join(functions)} failed (exit {done.returncode})")
        return time.monotonic() - started

    def start(self) -> None:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise ChaosError(f"no Kafka jars in {self.jars}: run `make setup` first")
        (self.state / "kafka").mkdir(parents=True, exist_ok=True)
        lib = self.state / "kafka" / "lib"
        if not lib.exists():
            lib.symlink_to(self.jars.resolve())
        self._script("start_postgres")
        self._start_kafka()

    def restart_kafka(self) -> float:
        """services.sh's stop (SIGTERM, a controlled shutdown) then start; seconds taken."""
        started = time.monotonic()
        self._script("stop_kafka")
        self._start_kafka()
        return time.monotonic() - started

    def _start_kafka(self) -> None:
        # services.sh gives the broker 120 s to say it started; on a machine loaded by other
        # suites it can take longer, while the JVM goes on starting: wait for it as a client.
        try:
            self._script("start_kafka")
        except ChaosError:
            try:
                asyncio.run(wait.kafka(self.bootstrap, within=KAFKA_START_SECONDS))
            except OpsError as exc:
                raise ChaosError(f"the run's Kafka did not start: {exc}") from exc

    def restart_postgres(self) -> float:
        """pg_ctl stop -m fast (every session cut, transactions rolled back) then start."""
        return self._script("stop_postgres", "start_postgres")

    def stop(self) -> None:
        with contextlib.suppress(ChaosError, subprocess.TimeoutExpired):
            self._script("stop_kafka", "stop_postgres", timeout=120)

    def destroy(self) -> None:
        """Stop both and delete the run's state (the cluster too, wherever services.sh put it)."""
        self.stop()
        pg = self.state / "postgres"
        if pg.is_symlink():
            shutil.rmtree(pg.resolve(), ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
