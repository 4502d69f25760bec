"""One chaos run: the whole system under a steady numbered load, faults in turn, then the count.

The stack is private (its own Kafka and PostgreSQL, `services.py`) and doubled: two ingest
processes behind one balancer for the agents, two processors workers in one consumer group, two
API processes behind one balancer for the browser sockets. A steady fleet (seed and legacy
dialects, one sample a second each) streams while the faults of `FAULTS` happen one after the
other; after the last one sampling stops, every agent drains its spool, and the run compares,
sample by sample, what each agent sampled, what ingest acknowledged, what the database stores,
what Kafka holds and what every socket received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from fleetpulse_agent.rest import RestClient
from schemas import topics
from schemas.canonical import METRIC_SAMPLE

from .. import migrate
from ..topics import ensure_topics
from . import procs
from .agents import LegacyAgent, SeedAgent
from .balancer import Balancer
from .errors import ChaosError
from .ledger import AgentLedger, SocketLedger
from .services import PrivateServices
from .watchers import Watcher

log = logging.getLogger(__name__)
PARTITIONS = 4
FAULTS = ("kill_ingest", "kill_worker", "restart_kafka", "restart_postgres", "kill_api", "cut_agent")


@dataclass(frozen=True)
class ChaosConfig:
    seed_agents: int = 4
    legacy_agents: int = 2
    interval: float = 1.0  # seconds between samples, per agent
    warmup: float = 6.0  # steady load before the first fault
    settle: float = 3.0  # steady load after a fault is repaired, before the next one
    cut_seconds: float = 20.0  # how long one agent is cut off
    recover_timeout: float = 120.0
    slack: float = 3.0  # a sample is late once it is older than this and not yet everywhere
    replay_rate: float = 20.0
    drain_timeout: float = 120.0
    faults: tuple[str, ...] = FAULTS
    mode: str = "short"

    @classmethod
    def short(cls) -> ChaosConfig:
        return cls()

    @classmethod
    def full(cls) -> ChaosConfig:
        return cls(
            seed_agents=16, legacy_agents=8, warmup=30.0, settle=15.0, cut_seconds=600.0,
            recover_timeout=300.0, drain_timeout=300.0, mode="full",
        )  # fmt: skip


@dataclass
class Phase:
    name: str
    started: float  # monotonic: samples sampled from here to the next phase's start are its own
    detail: str = ""
    injected_at: float | None = None  # the fault's moment (for a cut: when the agent came back)
    recovered_s: float | None = None  # until every sample older than `slack` was everywhere again
    repaired_s: float | None = None  # how long the repair (a restart) took, when there was one


@dataclass
class Run:
    config: ChaosConfig
    services: PrivateServices
    stack: procs.Deployables
    ingest_lb: Balancer
    isolated_lb: Balancer
    api_lb: Balancer
    app_id: str
    agents: list[SeedAgent | LegacyAgent] = field(default_factory=list)
    ledgers: list[AgentLedger] = field(default_factory=list)
    sockets: list[SocketLedger] = field(default_factory=list)
    watchers: list[Watcher] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)  # agents cut off right now
    stored: dict[str, int] = field(default_factory=dict)  # agent -> samples 1..cut stored (last poll)
    ticks: list[tuple[float, bool]] = field(default_factory=list)  # (monotonic, whole) per poll
    started: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)
    drained: bool = False
    kafka: dict[str, Counter[int]] = field(default_factory=dict)  # agent -> sample -> records
    in_db: dict[str, Counter[int]] = field(default_factory=dict)  # agent -> sample -> rows
    wall_seconds: float = 0.0

    def note(self, message: str) -> None:
        stamp = f"{time.monotonic() - self.started:7.1f}s"
        self.events.append(f"{stamp} {message}")
        print(f"[chaos {stamp}] {message}", flush=True)


# ---- the monitor: is every sample older than `slack` acked, stored and delivered? ----------


async def _stored_counts(dsn: str, ledgers: list[AgentLedger], cuts: list[int]) -> dict[str, int]:
    ids = [a.server_id for a in ledgers]
    lows = [a.time_of(1) for a in ledgers]
    highs = [a.time_of(max(0, c)) for a, c in zip(ledgers, cuts, strict=True)]
    async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=3, autocommit=True) as conn:
        cur = await conn.execute(
            """SELECT v.sid, count(m.time)
                 FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) AS v(sid, lo, hi)
                 LEFT JOIN metrics m ON m.server_id = v.sid AND m.time >= v.lo AND m.time <= v.hi
                GROUP BY v.sid""",
            (ids, lows, highs),
        )
        by_id = {row[0]: int(row[1]) for row in await cur.fetchall()}
    return {a.name: by_id.get(a.server_id, 0) for a in ledgers}


async def monitor(run: Run, stop: asyncio.Event) -> None:
    last_print = 0.0
    sockets_of: dict[str, list[SocketLedger]] = {}
    for s in run.sockets:
        sockets_of.setdefault(s.agent.name, []).append(s)
    while not stop.is_set():
        tick = time.monotonic()
        cuts = [a.sampled_before(tick - run.config.slack) for a in run.ledgers]
        try:
            stored = await asyncio.wait_for(_stored_counts(run.services.database_url, run.ledgers, cuts), 5)
        except (psycopg.Error, OSError, TimeoutError):
            stored = None
        whole = stored is not None
        lagging: list[str] = []
        for a, cut in zip(run.ledgers, cuts, strict=True):
            if a.name in run.excluded:
                continue
            parts = []
            if a.acked_upto() < cut:
                parts.append("ack")
            if stored is None or stored[a.name] < cut:
                parts.append("db")
            if any(s.delivered_upto() < cut for s in sockets_of.get(a.name, [])):
                parts.append("live")
            if parts:
                whole = False
                lagging.append(f"{a.name}({'+'.join(parts)})")
        if stored is not None:
            run.stored = stored
        run.ticks.append((tick, whole))
        if tick - last_print >= 5:
            last_print = tick
            sent = sum(len(a.sampled_at) for a in run.ledgers)
            acked = sum(len(a.acked) for a in run.ledgers)
            in_db = sum(run.stored.values())
            live = sum(s.delivered_upto() for s in run.sockets)
            phase = run.phases[-1].name if run.phases else "starting"
            up = sum(1 for x in run.agents if x.connected)
            state = (
                "whole"
                if whole
                else "lagging: " + ", ".join(lagging[:4]) + ("..." if len(lagging) > 4 else "")
            )
            run.note(
                f"[{phase}] sent {sent} acked {acked} stored(<{run.config.slack:g}s) {in_db} "
                f"live {live} agents up {up}/{len(run.agents)} sockets up "
                f"{sum(w.connected for w in run.watchers)}/{len(run.watchers)}; {state}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def wait_whole(run: Run, since: float, within: float) -> bool:
    """Wait until a poll, taken now or later and at least `slack` after `since`, finds every
    sample older than `slack` acked, stored and delivered (the system is whole again)."""
    called = time.monotonic()
    deadline = called + within
    while time.monotonic() < deadline:
        if any(whole and t >= called and t - run.config.slack >= since for t, whole in run.ticks[-8:]):
            return True
        await asyncio.sleep(0.25)
    return False


def recovery(ticks: list[tuple[float, bool]], since: float, until: float) -> float | None:
    """Seconds from `since` to the start of the unbroken run of whole polls that ends at `until`
    (the last time a sample was late, plus one poll); None if the system was not whole at the
    end. About 0: no sample was ever later than the slack."""
    start: float | None = None
    for t, whole in ticks:
        if since <= t <= until:
            if not whole:
                start = None
            elif start is None:
                start = t
    return None if start is None else max(0.0, start - since)


# ---- faults --------------------------------------------------------------------------------


async def _restart(child: procs.Child) -> float:
    started = time.monotonic()
    child.start()
    await child.healthy()
    return time.monotonic() - started


async def fault_kill_ingest(run: Run, phase: Phase) -> None:
    victim = max(run.stack.ingest, key=lambda c: run.ingest_lb.open[c.port] + run.isolated_lb.open[c.port])
    phase.detail = f"SIGKILL {victim.name} holding {run.ingest_lb.open[victim.port]} agent sockets"
    phase.injected_at = time.monotonic()
    victim.kill9()
    run.note(phase.detail)
    await wait_whole(run, phase.injected_at, run.config.recover_timeout)
    phase.repaired_s = await _restart(victim)


async def fault_kill_worker(run: Run, phase: Phase) -> None:
    """SIGKILL the worker seen inside a batch's open transaction (a write half done)."""
    dsn = run.services.database_url
    victim: procs.Child | None = None
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        ports: dict[int, procs.Child] = {}
        refreshed = 0.0
        while victim is None and time.monotonic() < deadline:
            if time.monotonic() - refreshed > 1.0:
                ports = {p: w for w in run.stack.workers for p in w.local_ports()}
                refreshed = time.monotonic()
            cur = await conn.execute(
                "SELECT client_port FROM pg_stat_activity WHERE application_name = %s "
                "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
                (run.app_id,),
            )
            for (port,) in await cur.fetchall():
                if port in ports:
                    victim = ports[port]
                    break
            if victim is None:
                await asyncio.sleep(0.003)
    if victim is None:
        victim = run.stack.workers[0]
        phase.detail = f"SIGKILL {victim.name} (never seen inside a transaction within 60 s)"
    else:
        phase.detail = f"SIGKILL {victim.name} inside a batch's open transaction"
    phase.injected_at = time.monotonic()
    victim.kill9()
    run.note(phase.detail)
    await wait_whole(run, phase.injected_at, run.config.recover_timeout)
    phase.repaired_s = await _restart(victim)


async def _restart_service(run: Run, phase: Phase, name: str, how: str, restart: Callable[[], float]) -> None:
    phase.injected_at = time.monotonic()
    run.note(f"restarting {name} ({how})")
    took = await asyncio.to_thread(restart)
    phase.detail = f"{name} stopped and started again ({took:.1f} s)"
    phase.repaired_s = took
    run.note(phase.detail)
    await wait_whole(run, phase.injected_at, run.config.recover_timeout)


async def fault_restart_kafka(run: Run, phase: Phase) -> None:
    await _restart_service(run, phase, "Kafka", "controlled shutdown, then start", run.services.restart_kafka)


async def fault_restart_postgres(run: Run, phase: Phase) -> None:
    await _restart_service(
        run, phase, "PostgreSQL", "pg_ctl stop -m fast, then start", run.services.restart_postgres
    )


async def fault_kill_api(run: Run, phase: Phase) -> None:
    victim = max(run.stack.apis, key=lambda c: run.api_lb.open[c.port])
    phase.detail = f"SIGKILL {victim.name} holding {run.api_lb.open[victim.port]} open sockets"
    phase.injected_at = time.monotonic()
    victim.kill9()
    run.note(phase.detail)
    await wait_whole(run, phase.injected_at, run.config.recover_timeout)
    phase.repaired_s = await _restart(victim)


async def fault_cut_agent(run: Run, phase: Phase) -> None:
    isolated = run.ledgers[0]
    run.excluded.add(isolated.name)
    await run.isolated_lb.cut()
    run.note(f"{isolated.name} cut off for {run.config.cut_seconds:g} s")
    await asyncio.sleep(run.config.cut_seconds)
    await run.isolated_lb.restore()
    run.excluded.discard(isolated.name)
    # The time to recover counts from the agent's return: its backlog replays, paced.
    phase.injected_at = time.monotonic()
    backlog = len(isolated.sampled_at) - isolated.acked_upto()
    phase.detail = (
        f"{isolated.name} cut off for {run.config.cut_seconds:g} s, back with {backlog} samples unacked"
    )
    run.note(phase.detail)
    await wait_whole(run, phase.injected_at, run.config.recover_timeout)


FAULT_STEPS: dict[str, Callable[[Run, Phase], Awaitable[None]]] = {
    "kill_ingest": fault_kill_ingest,
    "kill_worker": fault_kill_worker,
    "restart_kafka": fault_restart_kafka,
    "restart_postgres": fault_restart_postgres,
    "kill_api": fault_kill_api,
    "cut_agent": fault_cut_agent,
}


# ---- set-up ----------------------------------------------------------------------------------


async def provision(api_url: str, names: list[str]) -> tuple[str, dict[str, tuple[uuid.UUID, str]]]:
    """An account, one server and key per agent (through the real REST API); the access token."""
    async with RestClient(api_url) as rest:
        password = secrets.token_urlsafe(18)
        token = await rest.register(
            f"chaos-{uuid.uuid4().hex[:8]}@example.com", f"chaos{uuid.uuid4().hex[:8]}", password
        )
        out: dict[str, tuple[uuid.UUID, str]] = {}
        for name in names:
            server = await rest.create_server(name, host="127.0.0.1", metadata={"chaos": True})
            key = await rest.create_key(str(server["id"]), name="chaos")
            out[name] = (uuid.UUID(str(server["id"])), str(key["key"]))
        return str(token["access_token"]), out


async def kafka_copies(bootstrap: str, ledgers: list[AgentLedger]) -> dict[str, Counter[int]]:
    """How many records of each sample the metrics topic holds (an agent's resend of a frame
    whose ack was lost is a second record: at-least-once into Kafka)."""
    by_id = {a.server_id: a for a in ledgers}
    out: dict[str, Counter[int]] = {a.name: Counter() for a in ledgers}
    topic = topics.METRICS.name("")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).items():
                for record in records:
                    sample = METRIC_SAMPLE.validate_json(record.value or b"")
                    agent = by_id.get(sample.server_id)
                    if agent is not None:
                        n = agent.number_of(sample.time)
                        out[agent.name][n if n is not None else -1] += 1
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


async def stored_samples(dsn: str, ledgers: list[AgentLedger]) -> dict[str, Counter[int]]:
    by_id = {a.server_id: a for a in ledgers}
    out: dict[str, Counter[int]] = {a.name: Counter() for a in ledgers}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT server_id, time FROM metrics WHERE server_id = ANY(%s)", ([a.server_id for a in ledgers],)
        )
        for server_id, t in await cur.fetchall():
            agent = by_id[server_id]
            n = agent.number_of(t)
            out[agent.name][n if n is not None else -1] += 1
    return out


async def drain(run: Run, within: float) -> bool:
    """After sampling stopped: until every agent's spool is empty and all is stored and delivered."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pending = [await a.pending() for a in run.agents]
        stored_ok = run.stored and all(run.stored.get(a.name, 0) >= len(a.sampled_at) for a in run.ledgers)
        live_ok = all(s.delivered_upto() >= len(s.agent.sampled_at) for s in run.sockets)
        if not any(pending) and stored_ok and live_ok:
            return True
        await asyncio.sleep(0.5)
    return False


async def execute(config: ChaosConfig, state: Path, jars: Path, logs: Path, *, keep: bool = False) -> Run:
    """Run the chaos scenario and count; returns the run, whose ledgers the report reads. The
    private services and their state are deleted at the end unless `keep`."""
    services = PrivateServices.allocate(state, jars, log=logs / "services.log")
    app_id = "chaos-processors"
    run: Run | None = None
    stop_all = asyncio.Event()
    sampling_stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    stack = procs.Deployables()
    balancers: list[Balancer] = []
    try:
        t0 = time.monotonic()
        print(f"[chaos] starting a private Kafka and PostgreSQL in {state}", flush=True)
        await asyncio.to_thread(services.start)
        base_env = procs.child_env(
            services.env(),
            {
                "FLEETPULSE_ENV": "test",
                "FLEETPULSE_DATABASE_URL": services.database_url,
                "FLEETPULSE_KAFKA_BOOTSTRAP": services.bootstrap,
                "FLEETPULSE_TOPIC_PARTITIONS": str(PARTITIONS),
                "FLEETPULSE_JWT_SECRET": secrets.token_urlsafe(48),
                "FLEETPULSE_KEY_PEPPER": secrets.token_urlsafe(48),
            },
        )
        await asyncio.to_thread(migrate.apply, services.database_url)
        await ensure_topics(services.bootstrap, "", PARTITIONS)
        stack = procs.build(base_env, state, logs, app_id=app_id)
        for child in stack.all:
            child.start()
        for child in stack.all:
            await child.healthy()
        print(f"[chaos] services and 6 deployables up after {time.monotonic() - t0:.0f} s", flush=True)

        ingest_ports = lambda: [c.port for c in stack.ingest]  # noqa: E731
        ingest_lb = await Balancer("ingest", ingest_ports).start()
        isolated_lb = await Balancer("isolated agent", ingest_ports).start()
        api_lb = await Balancer("api", lambda: [c.port for c in stack.apis]).start()
        balancers = [ingest_lb, isolated_lb, api_lb]
        run = Run(config, services, stack, ingest_lb, isolated_lb, api_lb, app_id)

        names = [f"seed-{i + 1}" for i in range(config.seed_agents)]
        names += [f"legacy-{i + 1}" for i in range(config.legacy_agents)]
        token, servers = await provision(f"http://127.0.0.1:{stack.apis[0].port}", names)
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        for index, name in enumerate(names):
            server_id, key = servers[name]
            ledger = AgentLedger(name, "legacy" if name.startswith("legacy") else "seed", server_id, base)
            lb = isolated_lb if index == 0 else ingest_lb  # the first agent is the one cut off later
            agent: SeedAgent | LegacyAgent
            if ledger.dialect == "seed":
                url = f"ws://127.0.0.1:{lb.port}/api/v1/agents/ws"
                agent = SeedAgent(ledger, url, key, interval=config.interval, replay_rate=config.replay_rate)
            else:
                agent = LegacyAgent(ledger, f"http://127.0.0.1:{lb.port}", key, interval=config.interval)
            run.ledgers.append(ledger)
            run.agents.append(agent)
            socket_ledger = SocketLedger(f"socket-{name}", ledger)
            run.sockets.append(socket_ledger)
            run.watchers.append(Watcher(socket_ledger, f"ws://127.0.0.1:{api_lb.port}", token))

        # The sockets first, so that every sample reaches them live.
        tasks += [asyncio.create_task(w.run(stop_all)) for w in run.watchers]
        deadline = time.monotonic() + 60
        while not all(w.connected for w in run.watchers):
            if time.monotonic() > deadline:
                raise ChaosError("the sockets did not all connect within 60 s")
            await asyncio.sleep(0.2)
        run.phases.append(Phase("steady", time.monotonic(), "no fault: the baseline"))
        tasks += [asyncio.create_task(a.run(sampling_stop, stop_all)) for a in run.agents]
        tasks.append(asyncio.create_task(monitor(run, stop_all)))
        run.note(
            f"{config.seed_agents} seed and {config.legacy_agents} legacy agents, "
            f"{len(run.watchers)} sockets, faults: {', '.join(config.faults)}"
        )
        await asyncio.sleep(config.warmup)
        # Every agent connected before the first fault (a loaded machine connects them late, and
        # a SIGKILL of an ingest that holds no agent proves nothing).
        for _ in range(600):  # at most 120 s
            if all(a.connected for a in run.agents):
                break
            await asyncio.sleep(0.2)
        for name in config.faults:
            phase = Phase(name, time.monotonic())
            run.phases.append(phase)
            await FAULT_STEPS[name](run, phase)
            await asyncio.sleep(config.settle)
            if phase.injected_at is not None:
                phase.recovered_s = recovery(run.ticks, phase.injected_at, time.monotonic())
            run.note(
                f"{name}: recovered in "
                + (
                    f"{phase.recovered_s:.1f} s"
                    if phase.recovered_s is not None
                    else "NOT within the timeout"
                )
            )
        run.phases.append(Phase("drain", time.monotonic(), "sampling stopped; spools drain"))
        sampling_stop.set()
        run.note("sampling stopped: waiting for every spool to drain and every sample to be everywhere")
        run.drained = await drain(run, config.drain_timeout)
        run.note("drained" if run.drained else f"NOT drained within {config.drain_timeout:g} s")
        await asyncio.sleep(1.0)  # the last frames of the sockets
        stop_all.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()
        run.note("counting: the database's rows and the metrics topic's records, sample by sample")
        run.in_db = await stored_samples(services.database_url, run.ledgers)
        run.kafka = await kafka_copies(services.bootstrap, run.ledgers)
        run.wall_seconds = time.monotonic() - t0
        return run
    finally:
        # Each step in a finally of its own: an interruption (a test's timeout) in one step must
        # not leave the processes or the private services of the run behind.
        try:
            stop_all.set()
            sampling_stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for lb in balancers:
                await lb.close()
        finally:
            try:
                stack.stop_all()
            finally:
                if keep:
                    services.stop()
                else:
                    services.destroy()
