"""The stack `make run` starts (the API with ingest in one process, the stream processors with the
alert engine), on a database, a topic prefix, ports and a faust app id of its own; a fleet of
servers with their API keys written straight into the database; CPU per process; consumer lag.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ops import migrate
from ops.run import Child, RunConfig, children, stop_all, wait_healthy
from ops.run import start as start_child
from ops.topics import ensure_topics
from schemas import apikeys, tokens

from .services import Services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fleet:
    user_id: uuid.UUID
    token: str
    agents: list[tuple[str, str]]  # (API key, server id)


@dataclass
class Stack:
    services: Services
    name: str
    state: Path
    partitions: int = 12
    env: dict[str, str] = field(default_factory=dict)
    running: list[Child] = field(default_factory=list)
    database: str = ""
    prefix: str = ""
    api_port: int = 0
    jwt_secret: str = ""
    pepper: str = ""

    @property
    def dsn(self) -> str:
        return self.services.dsn(self.database)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def agent_url(self) -> str:
        return f"ws://127.0.0.1:{self.api_port}/api/v1/agents/ws"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        """Migrate a fresh database, create the topics, start the deployables, wait for health."""
        tag = uuid.uuid4().hex[:8]
        self.database = f"fp_bench_{self.name}_{tag}"
        self.prefix = f"bench-{self.name}-{tag}."
        self.services.create_database(self.database)
        migrate.apply(self.dsn)
        asyncio.run(ensure_topics(self.services.bootstrap, self.prefix, self.partitions))
        self.api_port = free_port()
        self.jwt_secret = secrets.token_urlsafe(48)
        self.pepper = secrets.token_urlsafe(48)
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        processors_port = free_port()
        self.env = {
            "FLEETPULSE_ENV": "development",
            "FLEETPULSE_STATE_DIR": str(self.state),
            "FLEETPULSE_DATABASE_URL": self.dsn,
            "FLEETPULSE_KAFKA_BOOTSTRAP": self.services.bootstrap,
            "FLEETPULSE_TOPIC_PREFIX": self.prefix,
            "FLEETPULSE_TOPIC_PARTITIONS": str(self.partitions),
            "FLEETPULSE_JWT_SECRET": self.jwt_secret,
            "FLEETPULSE_KEY_PEPPER": self.pepper,
            "FLEETPULSE_API_PORT": str(self.api_port),
            "FLEETPULSE_PROCESSORS_WEB_PORT": str(processors_port),
            "FLEETPULSE_PROCESSORS_APP_ID": f"bench-{tag}",
            "FLEETPULSE_PROCESSORS_ALERTS_WORKER_WEB_PORT": str(free_port()),
            **(extra_env or {}),
        }
        cfg = RunConfig(
            api_port=self.api_port,
            ingest_port=free_port(),
            processors_port=processors_port,
            combined=True,
            run_dir=self.state / "run",
            agents=0,
            keep_services=True,
        )
        for child in children(cfg):  # exactly what `make run` starts
            child.env = self.env
            start_child(child, logs)
            self.running.append(child)
        for child in self.running:
            wait_healthy(child, timeout=180)

    def stop(self) -> None:
        stop_all(self.running, stop_services=False)
        self.running.clear()

    def drop(self) -> None:
        asyncio.run(delete_topics(self.services.bootstrap, self.prefix))
        self.services.drop_database(self.database)

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.running if c.proc is not None}

    def provision(self, count: int, rules: bool = True) -> Fleet:
        """`count` servers of one user with a key each (COPY), the demo's three owner-wide rules."""
        return provision(self.dsn, self.pepper, self.jwt_secret, count, self.api_url if rules else None)


def provision(dsn: str, pepper: str, jwt_secret: str, count: int, api_url: str | None) -> Fleet:
    user = uuid.uuid4()
    agents: list[tuple[str, str]] = []
    key_rows = []
    server_rows = []
    for i in range(count):
        server = uuid.uuid4()
        plaintext, parsed = apikeys.generate()
        server_rows.append((server, user, f"bench-{i:05d}"))
        key_rows.append(
            (uuid.uuid4(), server, parsed.lookup_id, apikeys.hash_secret(pepper.encode(), parsed.secret))
        )
        agents.append((plaintext, str(server)))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, username, password_hash) VALUES (%s, %s, %s, 'x')",
            (user, f"{user.hex}@bench.test", user.hex),
        )
        with conn.cursor() as cur:
            with cur.copy("COPY servers (id, owner_id, name) FROM STDIN") as copy:
                for srow in server_rows:
                    copy.write_row(srow)
            with cur.copy("COPY api_keys (id, server_id, lookup_id, secret_hash) FROM STDIN") as copy:
                for krow in key_rows:
                    copy.write_row(krow)
    token, _ = tokens.encode(jwt_secret, user, "access", timedelta(hours=12))
    if api_url is not None:
        # The demo's rules (ops/run.py), once for the whole fleet: the engine evaluates them all.
        with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as rest:
            for metric, threshold in (("cpu", 90.0), ("memory", 90.0), ("disk", 85.0)):
                body = {"name": f"{metric} > {threshold:g}", "metric": metric, "threshold": threshold}
                rest.post("/api/v1/alerts/rules", json=body).raise_for_status()
    return Fleet(user, token, agents)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


class CpuMeter:
    """CPU seconds of named process trees, read twice: the share of one core in between."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.last: dict[str, float] = {}
        self.at = time.monotonic()
        self.read()

    @staticmethod
    def _tree(pid: int) -> float:
        try:
            p = psutil.Process(pid)
            procs = [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for q in procs:
            try:
                t = q.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def read(self) -> dict[str, float]:
        """Percent of one core per group since the last read."""
        now = time.monotonic()
        wall = max(now - self.at, 1e-6)
        out = {}
        for name, pids in self.groups.items():
            cpu = sum(self._tree(p) for p in pids)
            out[name] = round((cpu - self.last.get(name, cpu)) / wall * 100, 1)
            self.last[name] = cpu
        self.at = now
        return out


class Lag:
    """Seconds behind of every consumer group of a topic prefix: the age of the oldest message a
    group has not committed (0 when it is at the end), the largest over the topic's partitions."""

    def __init__(self, bootstrap: str, prefix: str, topic: str) -> None:
        self.bootstrap, self.prefix, self.topic = bootstrap, prefix, topic

    async def read(self) -> dict[str, float]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(self.topic) or set()
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            out: dict[str, float] = {}
            groups = [g[0] for g in await admin.list_consumer_groups()]
            now = datetime.now(UTC).timestamp()
            for group in groups:
                offsets = await admin.list_consumer_group_offsets(group)
                mine = {tp: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic}
                if not mine:
                    continue
                behind = [(tp, off) for tp, off in mine.items() if 0 <= off < ends.get(tp, 0)]
                worst = 0.0
                if behind:
                    consumer.assign([tp for tp, _ in behind])
                    for tp, off in behind:
                        consumer.seek(tp, off)
                    for tp, _ in behind:
                        got = await consumer.getmany(tp, timeout_ms=2000, max_records=1)
                        for r in got.get(tp, [])[:1]:
                            worst = max(worst, now - r.timestamp / 1000)
                out[group] = round(worst, 2)
            return out
        finally:
            await consumer.stop()
            await admin.close()


def group_label(group: str) -> str:
    """persistence (its group ends in -persist) or alerts (the engine's: the app id's group)."""
    return "persistence" if group.endswith("-persist") else "alerts"


def health(url: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = httpx.get(url, timeout=5).json()
        return body
    except (httpx.HTTPError, ValueError):
        return {}
