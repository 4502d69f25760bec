"""The fleet simulator: many light agents in one process, speaking the real protocol over real
sockets (one socket per simulated server, its own API key, its own spool and seq numbers).

Each agent walks its metrics realistically (CPU mean-reverting around its own baseline with
occasional bursts, memory drifting, disks filling slowly, network counters growing), writes logs
(more of them, and worse, during a burst), and comes and goes: it disconnects now and then, keeps
sampling while away, and replays its backlog when it comes back, as a real agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

from .connection import AgentConnection, ConnectionConfig
from .errors import TIMEOUTS, AuthRejected, Superseded
from .runner import spool_logs, spool_metrics
from .spool import MemorySpool
from .wire import Disk, Interface, LogEntry, LogsFrame, MetricsFrame, Process, utc_now

log = logging.getLogger(__name__)
GIB = 1024**3

_INFO = [
    "GET /api/orders 200 {ms}ms",
    "GET /health 200 1ms",
    "POST /api/login 200 {ms}ms",
    "worker heartbeat ok",
    "cache hit ratio {pct}%",
    "scheduled job backup finished in {ms}ms",
]
_WARN = ["slow query took {ms}ms", "connection pool at {pct}% of its size", "retrying upstream request"]
_ERROR = ["upstream timed out after {ms}ms", "POST /api/orders 500 internal error", "disk write latency high"]


@dataclass
class Walk:
    """One simulated server's state between samples."""

    rng: random.Random
    cores: int = 4
    cpu_base: float = 20.0
    cpu: float = 20.0
    memory: float = 40.0
    burst_left: int = 0
    disks: list[tuple[str, int, float]] = field(default_factory=list)  # mount, total, used fraction
    sent: int = 0
    recv: int = 0
    booted: float = field(default_factory=time.time)

    @classmethod
    def new(cls, rng: random.Random) -> Walk:
        base = rng.uniform(5, 45)
        disks = [("/", rng.choice([50, 100, 250]) * GIB, rng.uniform(0.2, 0.7))]
        if rng.random() < 0.5:
            disks.append(("/var/lib/data", rng.choice([500, 1000, 2000]) * GIB, rng.uniform(0.1, 0.8)))
        return cls(
            rng=rng,
            cores=rng.choice([2, 4, 8, 16]),
            cpu_base=base,
            cpu=base,
            memory=rng.uniform(20, 70),
            disks=disks,
            sent=rng.randrange(10**6, 10**9),
            recv=rng.randrange(10**6, 10**9),
            booted=time.time() - rng.uniform(3600, 90 * 86400),
        )

    def step(self, interval: float) -> MetricsFrame:
        r = self.rng
        if self.burst_left == 0 and r.random() < 0.02:
            self.burst_left = r.randint(3, 12)  # a burst: a deploy, a batch job, a traffic spike
        if self.burst_left > 0:
            self.burst_left -= 1
            self.cpu = r.uniform(85, 100)
        else:
            self.cpu += 0.3 * (self.cpu_base - self.cpu) + r.gauss(0, 4)  # mean-reverting
        self.cpu = min(100.0, max(0.0, self.cpu))
        self.memory = min(98.0, max(5.0, self.memory + r.gauss(0, 0.5) + (0.3 if self.burst_left else 0)))
        self.disks = [(m, t, min(0.99, u + r.uniform(0, 0.00002))) for m, t, u in self.disks]
        self.sent += int(r.expovariate(1 / 200_000) * interval * (3 if self.burst_left else 1))
        self.recv += int(r.expovariate(1 / 400_000) * interval * (3 if self.burst_left else 1))
        mem_total = 16 * GIB
        load = self.cpu / 100 * self.cores
        return MetricsFrame(
            timestamp=utc_now(),
            cpu_percent=round(self.cpu, 2),
            memory_percent=round(self.memory, 2),
            memory_total=mem_total,
            memory_used=int(mem_total * self.memory / 100),
            load_average=(round(load, 2), round(load * 0.8, 2), round(load * 0.6, 2)),
            uptime_seconds=int(time.time() - self.booted),
            cpu_cores=self.cores,
            disk_usage=[
                Disk(path=m, total=t, used=int(t * u), free=t - int(t * u), percent=round(u * 100, 2))
                for m, t, u in self.disks
            ],
            network=[Interface(interface="eth0", bytes_sent=self.sent, bytes_recv=self.recv)],
            containers=None,
            top_processes=[
                Process(pid=1000 + i, name=name, cpu_percent=round(self.cpu * share, 2), user="app")
                for i, (name, share) in enumerate((("python3", 0.5), ("postgres", 0.3), ("nginx", 0.1)))
            ],
        )

    def logs(self) -> list[LogEntry]:
        r = self.rng
        now = utc_now()
        out = []
        for _ in range(r.choice([0, 0, 1, 1, 2, 3]) + (r.randint(2, 6) if self.burst_left else 0)):
            roll = r.random()
            if self.burst_left and roll < 0.4:
                level, pool = "ERROR", _ERROR
            elif roll < 0.1:
                level, pool = "WARNING", _WARN
            else:
                level, pool = "INFO", _INFO
            text = r.choice(pool).format(ms=r.randint(1, 3000), pct=r.randint(50, 99))
            out.append(LogEntry(level=level, message=text, timestamp=now, source="app.log"))
        return out


@dataclass(frozen=True)
class FleetConfig:
    url: str
    keys: list[str]
    interval: float = 5.0
    churn_mean_seconds: float = 600.0  # mean time an agent stays before leaving for a while; 0: never
    away_seconds: tuple[float, float] = (5.0, 30.0)
    startup_spread_seconds: float = 5.0
    seed: int | None = None
    spool_max_frames: int = 10_000
    replay_rate: float = 20.0


class Fleet:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.connections: list[AgentConnection] = []
        self.rejected: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._agent(i, key, stop), name=f"sim-{i}")
            for i, key in enumerate(self.config.keys)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def summary(self) -> dict[str, int]:
        return {
            "agents": len(self.connections),
            "connected": sum(c.stats.connected for c in self.connections),
            "sent": sum(c.stats.sent for c in self.connections),
            "acked": sum(c.stats.acked for c in self.connections),
            "replayed": sum(c.stats.replayed for c in self.connections),
            "rejected_keys": len(self.rejected),
        }

    async def _agent(self, index: int, key: str, stop: asyncio.Event) -> None:
        cfg = self.config
        rng = random.Random(self.rng.random())
        walk = Walk.new(rng)
        spool = MemorySpool(cfg.spool_max_frames)
        conn = AgentConnection(
            ConnectionConfig(url=cfg.url, api_key=key, replay_rate=cfg.replay_rate),
            spool,
            name=f"sim-{index}",
        )
        self.connections.append(conn)
        sampler = asyncio.create_task(self._sample(walk, spool, conn, stop))
        try:
            # Spread the first connects: a fleet starting together does not arrive together.
            with contextlib.suppress(*TIMEOUTS):
                await asyncio.wait_for(stop.wait(), rng.uniform(0, cfg.startup_spread_seconds))
            while not stop.is_set():
                present = asyncio.Event()
                stay = rng.expovariate(1 / cfg.churn_mean_seconds) if cfg.churn_mean_seconds > 0 else None
                leave = asyncio.create_task(_set_after(present, stop, stay))
                try:
                    await conn.run_forever(present)
                finally:
                    leave.cancel()
                if stop.is_set():
                    break
                # Gone for a while; samples keep accumulating in the spool and replay on return.
                with contextlib.suppress(*TIMEOUTS):
                    await asyncio.wait_for(stop.wait(), rng.uniform(*cfg.away_seconds))
        except (AuthRejected, Superseded) as exc:
            self.rejected.append(str(exc))
            log.error("sim-%d: %s; this simulated agent stops", index, exc)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    async def _sample(
        self, walk: Walk, spool: MemorySpool, conn: AgentConnection, stop: asyncio.Event
    ) -> None:
        interval = self.config.interval
        await asyncio.sleep(walk.rng.uniform(0, interval))  # agents sample out of phase
        while not stop.is_set():
            await spool_metrics(spool, conn, walk.step(interval))
            entries = walk.logs()
            if entries:
                await spool_logs(spool, conn, LogsFrame(entries=entries))
            await asyncio.sleep(interval)


async def _set_after(event: asyncio.Event, stop: asyncio.Event, seconds: float | None) -> None:
    """Set `event` after `seconds` (never, if None) or as soon as `stop` is set."""
    with contextlib.suppress(*TIMEOUTS):
        await asyncio.wait_for(stop.wait(), seconds)
    event.set()
