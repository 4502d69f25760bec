"""The Kafka broker and PostgreSQL cluster a bench run uses.

`own` (the default): instances of the project's own services script with a state folder of their
own (`<state dir>/bench`, or `FLEETPULSE_BENCH_STATE_DIR`; its data folders wiped at every start,
so each run starts clean) on other ports (`FLEETPULSE_BENCH_PG_PORT` 25432,
`FLEETPULSE_BENCH_KAFKA_PORT` 29092 and `FLEETPULSE_BENCH_KAFKA_CONTROLLER_PORT` 29093), stopped
at the end. The shared development services and their data are never touched: a ramp to ten
thousand agents would otherwise fill the broker teammates' tests use.
`shared`: the running services (`FLEETPULSE_KAFKA_BOOTSTRAP`, `FLEETPULSE_DATABASE_URL`), with a
database and a topic prefix of the run's own, dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "services.sh"


class ServicesError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Services:
    mode: str  # own | shared
    bootstrap: str
    admin_dsn: str  # the cluster's maintenance database, to create and drop the run's databases
    state_dir: Path | None  # own instances only
    kafka_version: str
    postgres_version: str
    timescaledb_version: str

    def dsn(self, database: str) -> str:
        return f"{self.admin_dsn.rpartition('/')[0]}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pids(self) -> dict[str, list[int]]:
        """The broker's and the cluster's processes (own instances), for CPU accounting."""
        if self.state_dir is None:
            return {}
        out: dict[str, list[int]] = {}
        broker = self.state_dir / "kafka" / "broker.pid"
        if broker.exists():
            out["kafka"] = [int(broker.read_text().split()[0])]
        postmaster = (self.state_dir / "postgres").resolve() / "data" / "postmaster.pid"
        if postmaster.exists():
            out["postgres"] = [int(postmaster.read_text().split()[0])]
        return out


def _env(state: Path, pg_port: int, kafka_port: int, controller_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "FLEETPULSE_STATE_DIR": str(state),
        "FLEETPULSE_PG_PORT": str(pg_port),
        "FLEETPULSE_KAFKA_PORT": str(kafka_port),
        "FLEETPULSE_KAFKA_CONTROLLER_PORT": str(controller_port),
        "FLEETPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
    }


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _versions(admin_dsn: str) -> tuple[str, str]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
        ts = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    return (str(pg[0]).split()[0] if pg else "?", str(ts[0]) if ts else "?")


def _kafka_version(state: Path) -> str:
    jars = sorted((state / "kafka" / "lib").glob("kafka_2.13-*.jar"))
    return jars[-1].stem.removeprefix("kafka_2.13-") if jars else "?"


def start(mode: str) -> Services:
    project_state = Path(os.environ.get("FLEETPULSE_STATE_DIR", ROOT / ".state"))
    if mode == "shared":
        bootstrap = os.environ.get("FLEETPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
        url = os.environ.get("FLEETPULSE_DATABASE_URL", "postgresql://fleetpulse@127.0.0.1:15432/fleetpulse")
        admin = url.rpartition("/")[0] + "/postgres"
        pg, ts = _versions(admin)
        return Services("shared", bootstrap, admin, None, _kafka_version(project_state), pg, ts)
    # FLEETPULSE_BENCH_STATE_DIR: a second run at the same time needs a state folder (and ports) of its own.
    state = Path(os.environ.get("FLEETPULSE_BENCH_STATE_DIR", project_state / "bench"))
    pg_port = int(os.environ.get("FLEETPULSE_BENCH_PG_PORT", "25432"))
    kafka_port = int(os.environ.get("FLEETPULSE_BENCH_KAFKA_PORT", "29092"))
    controller = int(os.environ.get("FLEETPULSE_BENCH_KAFKA_CONTROLLER_PORT", "29093"))
    busy = [p for p in (pg_port, kafka_port, controller) if not _port_free(p)]
    if busy:
        raise ServicesError(f"port(s) {busy} in use: another bench run? (FLEETPULSE_BENCH_*_PORT move them)")
    env = _env(state, pg_port, kafka_port, controller)
    # A clean start: no database and no topic of an earlier run. Jars and builds are kept.
    for data in (state / "postgres" / "data", state / "kafka" / "data", state / "kafka" / "meta"):
        shutil.rmtree(data.resolve() if data.exists() else data, ignore_errors=True)
    for step in ("setup", "start"):
        done = subprocess.run([str(SCRIPT), step], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServicesError(f"services.sh {step} failed:\n{done.stderr[-3000:]}")
    admin = f"postgresql://fleetpulse@127.0.0.1:{pg_port}/postgres"
    pg, ts = _versions(admin)
    return Services("own", f"127.0.0.1:{kafka_port}", admin, state, _kafka_version(state), pg, ts)


def stop(services: Services) -> None:
    if services.mode != "own" or services.state_dir is None:
        return  # shared services are never stopped
    pg_port = services.admin_dsn.rpartition(":")[2].partition("/")[0]
    kafka_port = services.bootstrap.rpartition(":")[2]
    controller = os.environ.get("FLEETPULSE_BENCH_KAFKA_CONTROLLER_PORT", "29093")
    env = _env(services.state_dir, int(pg_port), int(kafka_port), int(controller))
    subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, check=False)
