"""The simulated fleet of a chaos run, in both dialects, every sample numbered.

Seed agents are the reference agent's own connection code (`fleetpulse_agent.connection`: spool,
acks, replay, backoff with full jitter) over a memory spool that records each acknowledged seq.
Legacy agents speak the ChatOps dialect as its spec describes the agent: the key pre-flight
before every connect, metrics under `data` with whole-second local times, exactly one
`metrics_received` per frame within 5 s or the agent reconnects. Unlike the real legacy agent, a
simulated one keeps its unacknowledged samples and sends them again after the reconnect (up to
`LEGACY_WINDOW` in flight), so that its samples can be counted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
from collections import deque
from collections.abc import Iterable
from datetime import timedelta, timezone

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from fleetpulse_agent.connection import AgentConnection, ConnectionConfig
from fleetpulse_agent.errors import TIMEOUTS, AuthRejected, Superseded
from fleetpulse_agent.pacing import Backoff
from fleetpulse_agent.runner import spool_metrics
from fleetpulse_agent.simulator import Walk
from fleetpulse_agent.spool import MemorySpool

from .ledger import AgentLedger

log = logging.getLogger(__name__)
GIB = 1024**3
LEGACY_ACK_DEADLINE = 5.0  # the legacy agent's own deadline for `metrics_received`
# Frames a simulated legacy agent has in flight while it catches up (the real one sends one every
# 5 s and keeps no backlog; one at a time, a backlog would drain at one frame per round trip).
LEGACY_WINDOW = 16


class RecordingSpool(MemorySpool):
    """The simulator's memory spool, telling the ledger which seqs were acknowledged."""

    def __init__(self, max_frames: int, ledger: AgentLedger) -> None:
        super().__init__(max_frames)
        self.ledger = ledger

    async def ack(self, seqs: Iterable[int]) -> int:
        seqs = list(seqs)
        for seq in seqs:
            self.ledger.ack(seq)
        return await super().ack(seqs)


async def _sampler(ledger: AgentLedger, interval: float, stop: asyncio.Event, take: object) -> None:
    """Sample on a fixed schedule until `stop` (sample k is due at start + k * interval)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while not stop.is_set():
        await take()  # type: ignore[operator]
        k += 1
        with contextlib.suppress(*TIMEOUTS):
            await asyncio.wait_for(stop.wait(), max(0.0, start + k * interval - loop.time()))


class SeedAgent:
    def __init__(
        self, ledger: AgentLedger, url: str, key: str, *, interval: float, replay_rate: float
    ) -> None:
        self.ledger = ledger
        self.interval = interval
        self.walk = Walk.new(random.Random(ledger.name))
        self.spool = RecordingSpool(1_000_000, ledger)
        self.conn = AgentConnection(
            ConnectionConfig(
                url=url, api_key=key, replay_rate=replay_rate, backoff_max=10.0, ack_timeout=15.0
            ),
            self.spool,
            name=ledger.name,
        )

    @property
    def connected(self) -> bool:
        return self.conn.stats.connected

    async def _take(self) -> None:
        n = self.ledger.sampled()
        frame = dataclasses.replace(self.walk.step(self.interval), timestamp=self.ledger.time_of(n))
        seq = await spool_metrics(self.spool, self.conn, frame)
        if seq != n:
            raise AssertionError(f"{self.ledger.name}: seq {seq} for sample {n}")

    async def run(self, sampling: asyncio.Event, stop: asyncio.Event) -> None:
        sampler = asyncio.create_task(_sampler(self.ledger, self.interval, sampling, self._take))
        try:
            while not stop.is_set():
                try:
                    await self.conn.run_forever(stop)
                except (AuthRejected, Superseded) as exc:
                    # The real agent exits here; the run records it and carries on counting.
                    self.ledger.stopped = f"{type(exc).__name__}: {exc}"
                    log.error("%s: %s", self.ledger.name, exc)
                    with contextlib.suppress(*TIMEOUTS):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            self.ledger.connects = self.conn.stats.connects
            self.ledger.rejected = self.conn.stats.rejected
            self.ledger.dropped = await self.spool.dropped()

    async def pending(self) -> int:
        return await self.spool.size()


class LegacyAgent:
    """The ChatOps agent's dialect: one metrics frame in flight, acked by `metrics_received`."""

    def __init__(self, ledger: AgentLedger, base_url: str, key: str, *, interval: float) -> None:
        self.ledger = ledger
        self.base_url = base_url  # http://host:port: the pre-flight and the socket share it
        self.key = key
        self.interval = interval
        self.walk = Walk.new(random.Random(ledger.name))
        self.pending_samples: deque[tuple[int, bytes]] = deque()
        self.wake = asyncio.Event()
        self.backoff = Backoff(1.0, 10.0)
        self.connected = False
        # A fixed local offset, as a host's clock has: the server converts to UTC.
        self.tz = timezone(timedelta(hours=2))

    def _frame(self, n: int) -> bytes:
        step = self.walk.step(self.interval)
        disk = step.disk_usage[0]
        t = self.ledger.time_of(n).astimezone(self.tz)
        data = {
            "server_id": str(self.ledger.server_id),
            "timestamp": t.isoformat(timespec="seconds"),
            "cpu": {"usage_percent": step.cpu_percent, "cores": step.cpu_cores, "frequency_mhz": 2400},
            "memory": {
                "total_gb": round((step.memory_total or 0) / GIB, 2),
                "used_gb": round((step.memory_used or 0) / GIB, 2),
                "available_gb": round(((step.memory_total or 0) - (step.memory_used or 0)) / GIB, 2),
                "usage_percent": step.memory_percent,
            },
            "disk": {
                "total_gb": round(disk.total / GIB, 2),
                "used_gb": round(disk.used / GIB, 2),
                "available_gb": round(disk.free / GIB, 2),
                "usage_percent": disk.percent,
            },
            "network": {
                "bytes_sent": step.network[0].bytes_sent,
                "bytes_recv": step.network[0].bytes_recv,
                "packets_sent": n,
                "packets_recv": n,
            },
            "containers": None,
            "processes": [
                {"pid": 1234, "name": "chatops-agent", "cpu": 0.5, "memory": 12.0, "status": "sleep"}
            ],
        }
        return json.dumps({"type": "metrics", "data": data}).encode()

    async def _take(self) -> None:
        n = self.ledger.sampled()
        self.pending_samples.append((n, self._frame(n)))
        self.wake.set()

    async def pending(self) -> int:
        return len(self.pending_samples)

    async def run(self, sampling: asyncio.Event, stop: asyncio.Event) -> None:
        sampler = asyncio.create_task(_sampler(self.ledger, self.interval, sampling, self._take))
        try:
            while not stop.is_set():
                try:
                    await self._serve_once(stop)
                except (OSError, InvalidHandshake, ConnectionClosed, httpx.HTTPError, TimeoutError) as exc:
                    log.info("%s: connection lost: %r", self.ledger.name, exc)
                self.connected = False
                if stop.is_set():
                    break
                with contextlib.suppress(*TIMEOUTS):
                    await asyncio.wait_for(stop.wait(), self.backoff.next_delay())
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    async def _serve_once(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            answer = await client.get("/api/v1/api-keys/me", headers={"X-API-Key": self.key})
        if answer.status_code != 200:
            log.info("%s: pre-flight answered %d", self.ledger.name, answer.status_code)
            return
        url = self.base_url.replace("http://", "ws://") + "/api/v1/agents/ws"
        async with connect(url, open_timeout=10, close_timeout=2, ping_interval=20, ping_timeout=20) as ws:
            await ws.send(json.dumps({"type": "auth", "api_key": self.key}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if first.get("type") != "auth_success":
                log.info("%s: auth answered %s", self.ledger.name, first)
                return
            self.ledger.connects += 1
            self.connected = True
            replies: asyncio.Queue[dict[str, object]] = asyncio.Queue()
            reader = asyncio.create_task(_read_into(ws, replies))
            stopping = asyncio.create_task(stop.wait())
            # Sample numbers sent on this socket and not yet answered, oldest first: ingest
            # answers frames in the order they came (docs/protocol.md), one `metrics_received`
            # each, so each answer acknowledges the oldest.
            in_flight: deque[int] = deque()
            try:
                while not stop.is_set():
                    while len(in_flight) < LEGACY_WINDOW and len(in_flight) < len(self.pending_samples):
                        n, frame = self.pending_samples[len(in_flight)]
                        await ws.send(frame.decode())
                        in_flight.append(n)
                    if not in_flight:
                        self.wake.clear()
                        waiter = asyncio.create_task(self.wake.wait())
                        done, _ = await asyncio.wait(
                            {waiter, stopping, reader}, timeout=25, return_when=asyncio.FIRST_COMPLETED
                        )
                        waiter.cancel()
                        if reader in done:
                            reader.result()  # the socket ended
                        if not self.pending_samples and not stop.is_set():
                            await ws.send('{"type": "ping"}')
                        continue
                    reply = await self._next_reply(replies, reader)
                    if reply.get("type") != "metrics_received":
                        continue  # a pong; an error frame is no answer (the deadline decides)
                    n = in_flight.popleft()
                    done_n, _ = self.pending_samples.popleft()
                    if done_n != n:
                        raise AssertionError(f"{self.ledger.name}: answer for {n} but {done_n} was oldest")
                    # Acknowledged: Kafka has it. Only now does the sample leave the agent.
                    self.ledger.ack(n)
                    self.backoff.reset()
            finally:
                for task in (reader, stopping):
                    task.cancel()
                await asyncio.gather(reader, stopping, return_exceptions=True)

    async def _next_reply(
        self, replies: asyncio.Queue[dict[str, object]], reader: asyncio.Task[None]
    ) -> dict[str, object]:
        """The next frame from ingest within the legacy agent's deadline, else TimeoutError: the
        connection is dropped and everything unanswered is sent again, as the agent does."""
        async with asyncio.timeout(LEGACY_ACK_DEADLINE):
            getting = asyncio.create_task(replies.get())
            try:
                done, _ = await asyncio.wait({getting, reader}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                getting.cancel()
            if getting in done:
                return getting.result()
            reader.result()  # raises why the socket ended
            raise ConnectionError("the socket ended")


async def _read_into(ws: object, replies: asyncio.Queue[dict[str, object]]) -> None:
    while True:
        replies.put_nowait(json.loads(await ws.recv()))  # type: ignore[attr-defined]
