"""Browser-style sockets on the API: each follows one server's metrics, counts every frame it
gets by sample number and Kafka position, and after a drop reconnects (through the balancer, so
to whichever API replica is up) with `resume`, the last position it saw, as the dashboard does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from fleetpulse_agent.errors import TIMEOUTS

from .ledger import SocketLedger

log = logging.getLogger(__name__)
TERMINAL = range(4400, 4500)  # the request itself is refused: reconnecting cannot help


class Watcher:
    def __init__(self, ledger: SocketLedger, ws_base: str, token: str) -> None:
        self.ledger = ledger
        self.url = f"{ws_base}/api/v1/ws/metrics/{ledger.agent.server_id}"
        self.token = token
        self.position: dict[str, int] | None = None
        self.connected = False
        self.terminal: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.ledger.name)
        while not stop.is_set() and self.terminal is None:
            try:
                await self._serve_once(stop)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.ledger.closes[type(exc).__name__] += 1
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                self.ledger.closes[str(code)] += 1
                if code in TERMINAL:
                    self.terminal = f"closed with {code}: {exc.rcvd.reason if exc.rcvd else ''}"
            finally:
                self.connected = False
            if stop.is_set():
                break
            # A dashboard reconnects after a short, jittered pause.
            with contextlib.suppress(*TIMEOUTS):
                await asyncio.wait_for(stop.wait(), rng.uniform(0.2, 1.5))

    async def _serve_once(self, stop: asyncio.Event) -> None:
        async with connect(self.url, open_timeout=10, close_timeout=2, max_size=None) as ws:
            auth: dict[str, Any] = {"type": "auth", "token": self.token, "window_seconds": 3600}
            if self.position is not None:
                auth["resume"] = self.position
                self.ledger.resumes += 1
            await ws.send(json.dumps(auth))
            stopping = asyncio.create_task(stop.wait())
            reading = asyncio.create_task(self._read(ws))
            try:
                done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if reading in done:
                    reading.result()
            finally:
                for task in (reading, stopping):
                    task.cancel()
                await asyncio.gather(reading, stopping, return_exceptions=True)

    async def _read(self, ws: ClientConnection) -> None:
        agent = self.ledger.agent
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "metrics":
                data = frame["data"]
                n = agent.number_of(datetime.fromisoformat(data["timestamp"]))
                pos = frame.get("position")
                self.ledger.got(n, (pos["partition"], pos["offset"]) if pos else None)
                if pos is not None:
                    self.position = pos
            elif kind == "history_end":
                if frame.get("position") is not None:
                    self.position = frame["position"]
            elif kind == "auth_success":
                self.ledger.connects += 1
                self.connected = True
            elif kind == "history_lost":
                self.ledger.history_lost.append(str(frame.get("reason")))
            elif kind == "coalesced":
                self.ledger.coalesced += int(frame.get("skipped") or 0)
            elif kind == "auth_required":
                await ws.send(json.dumps({"type": "auth", "token": self.token}))
