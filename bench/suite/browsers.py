"""Browser sockets in a process of their own: one metrics socket per watched server, each live
frame's receive time recorded by (server, sample time), joined with the agents' send times."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from datetime import datetime
from typing import Any


def _worker(conn: Any, url: str, token: str, servers: list[str]) -> None:
    import uvloop

    uvloop.run(_main(conn, url, token, servers))


async def _main(conn: Any, url: str, token: str, servers: list[str]) -> None:
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    received: list[tuple[str, int, float]] = []
    opened = 0
    auth = orjson.dumps({"type": "auth", "token": token, "window_seconds": 0}).decode()

    async def watch(server: str) -> None:
        nonlocal opened
        while True:
            try:
                async with connect(
                    f"{url}/api/v1/ws/metrics/{server}", ping_interval=None, max_size=1 << 24
                ) as ws:
                    await ws.send(auth)
                    opened += 1
                    async for raw in ws:
                        now = time.time()
                        frame = orjson.loads(raw)
                        if frame.get("type") == "metrics" and not frame.get("history"):
                            ts = datetime.fromisoformat(frame["data"]["timestamp"]).timestamp()
                            received.append((server, round(ts * 1000), now))
            except Exception:  # a dropped socket reconnects; the gap shows as missing frames
                await asyncio.sleep(1)

    tasks = []
    for i in range(0, len(servers), 100):
        tasks += [asyncio.ensure_future(watch(s)) for s in servers[i : i + 100]]
        await asyncio.sleep(0.2)
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "collect":
            conn.send((opened, received))
            received = []
        else:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.send((opened, []))
            return


class Browsers:
    def __init__(self, api_url: str, token: str, servers: list[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        url = api_url.replace("http://", "ws://")
        self.proc = ctx.Process(target=_worker, args=(child, url, token, servers), daemon=True)
        self.proc.start()

    def collect(self) -> list[tuple[str, int, float]]:
        self.pipe.send("collect")
        _, received = self.pipe.recv()
        return list(received)

    def stop(self) -> None:
        self.pipe.send("stop")
        self.pipe.recv()
        self.proc.join(30)


def join(sends: list[tuple[str, int, float]], received: list[tuple[str, int, float]]) -> list[float]:
    """Seconds from each watched frame's send to its receive by a browser socket."""
    sent = {(s, ts): at for s, ts, at in sends}
    return [at - sent[(s, ts)] for s, ts, at in received if (s, ts) in sent]


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    v = sorted(values)
    pick = lambda q: round(v[min(len(v) - 1, int(q * len(v)))], 4)  # noqa: E731
    return {"p50": round(statistics.median(v), 4), "p95": pick(0.95), "p99": pick(0.99)}
