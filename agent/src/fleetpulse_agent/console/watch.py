"""`fleetpulse watch <server>`: print one server's metrics, logs and alerts, history first and then
live, as they arrive.

Both frontend sockets are opened (metrics and logs); each prints its history, then a marker at the
seam (`history_end`), then live frames. Alerts come on both sockets and are printed once (from the
metrics socket). A socket closed with a "may reconnect" code reconnects with the last position it
saw (`resume`), so nothing is missed; an expiring token is refreshed on the open socket. Frames
are read as plain JSON (docs/live.md is their contract); one that is not understood is skipped.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any, TextIO

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..pacing import Backoff
from ..rest import RestClient, RestError

TOKEN_EXPIRED = 4001  # docs/live.md: get a fresh access token, then reconnect
Position = dict[str, int]


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_metrics(d: dict[str, Any]) -> str:
    disks = " ".join(f"{x['mount']} {x['percent']:.0f}%" for x in (d.get("disks") or [])[:3]) or "-"
    load = f"{d['load1']:.2f}" if d.get("load1") is not None else "-"
    network = d.get("network") or {}
    up, down = network.get("bytes_sent_per_second"), network.get("bytes_recv_per_second")
    net = f"↑{_human_bytes(up)}/s ↓{_human_bytes(down)}/s"
    cpu, mem = float(d.get("cpu_percent") or 0.0), float(d.get("memory_percent") or 0.0)
    return f"cpu {cpu:5.1f}%  mem {mem:5.1f}%  load {load}  disk {disks}  net {net}"


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            pass
    return datetime.now(timezone.utc)


def _clock(value: Any) -> str:
    return _time(value).astimezone().strftime("%H:%M:%S")


class Watcher:
    def __init__(
        self,
        rest: RestClient,
        ws_base: str,
        server_id: str,
        *,
        window_seconds: int,
        lines: int,
        max_live: int | None,
        out: TextIO,
    ) -> None:
        self.rest = rest
        self.ws_base = ws_base
        self.server_id = server_id
        self.window_seconds = window_seconds
        self.lines = lines
        self.max_live = max_live
        self.out = out
        self.live_seen = 0
        self.done = asyncio.Event()

    def emit(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._channel(ch)) for ch in ("metrics", "logs")]
        stopper = asyncio.create_task(self.done.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task is stopper else task.exception()
                if exc is not None:
                    raise exc
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    async def _channel(self, channel: str) -> None:
        url = f"{self.ws_base}/api/v1/ws/{channel}/{self.server_id}"
        position: Position | None = None
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                async with connect(url, open_timeout=10, ping_interval=20, max_size=4 << 20) as ws:
                    auth: dict[str, Any] = {"type": "auth", "token": self.rest.access_token or ""}
                    if position:
                        auth["resume"] = position
                    else:
                        auth.update(window_seconds=self.window_seconds, resolution="raw", lines=self.lines)
                    await ws.send(json.dumps(auth))
                    async for raw in ws:
                        frame = _decode(raw)
                        if frame is None:
                            continue
                        backoff.reset()
                        position = await self._handle(ws, channel, frame) or position
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == TOKEN_EXPIRED:
                    await self.rest.refresh()
                elif code is not None and 4400 <= code < 4500:
                    reason = exc.rcvd.reason if exc.rcvd is not None else ""
                    raise RestError(f"{channel} socket refused (close {code}): {reason}") from exc
                self.emit(f"-- {channel}: connection closed (code {code}), reconnecting --")
            except OSError as exc:
                self.emit(f"-- {channel}: cannot connect ({exc}), retrying --")
            await asyncio.sleep(backoff.next_delay())

    async def _handle(self, ws: Any, channel: str, frame: dict[str, Any]) -> Position | None:
        kind = frame.get("type")
        position = frame.get("position") if isinstance(frame.get("position"), dict) else None
        live = position is not None and not frame.get("history")
        tag = "live   " if live else "history"
        raw_data = frame.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        if kind == "auth_success":
            self.emit(f"-- {channel}: signed in, server {frame.get('server_id')} --")
        elif kind == "auth_required":
            token = await self.rest.refresh()
            await ws.send(json.dumps({"type": "auth", "token": token}))
        elif kind == "metrics":
            self.emit(f"{_clock(data.get('timestamp'))} [{tag}] metrics  {format_metrics(data)}")
            if live:
                self._count_live()
            return position
        elif kind == "log":
            source = f"{data['source']}: " if data.get("source") else ""
            level = str(data.get("level", ""))
            self.emit(
                f"{_clock(data.get('timestamp'))} [{tag}] log      {level:<8} {source}{data.get('message')}"
            )
            return position
        elif kind == "history_end":
            self.emit(f"-- {channel}: end of history, live from here --")
            return position
        elif kind == "history_lost":
            self.emit(
                f"-- {channel}: a gap could not be streamed ({frame.get('reason')}); see the REST history --"
            )
            return position
        elif kind == "alert":
            if channel == "metrics":
                self.emit(f"!! alert  {json.dumps(data)}")
            return position
        elif kind == "coalesced":
            self.emit(f"-- {channel}: {frame.get('skipped')} frame(s) skipped (slow terminal) --")
        elif kind == "error":
            self.emit(f"-- {channel}: error: {frame.get('message')} --")
        return None

    def _count_live(self) -> None:
        self.live_seen += 1
        if self.max_live is not None and self.live_seen >= self.max_live:
            self.done.set()


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) and isinstance(frame.get("type"), str) else None


def ws_base_for(api_url: str) -> str:
    """The sockets' base URL for an API URL: http becomes ws, https becomes wss."""
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if api_url.startswith(http):
            return ws + api_url[len(http) :].rstrip("/")
    return api_url.rstrip("/")


async def watch(
    rest: RestClient,
    api_url: str,
    server: str,
    *,
    window: int,
    lines: int,
    max_live: int | None,
    out: TextIO,
) -> int:
    found = await rest.find_server(server)
    print(f"watching {found['name']} ({found['id']}); Ctrl-C to stop", file=out, flush=True)
    watcher = Watcher(
        rest,
        ws_base_for(api_url),
        str(found["id"]),
        window_seconds=window,
        lines=lines,
        max_live=max_live,
        out=out,
    )
    await watcher.run()
    return 0
