"""`fleetpulse watch <server>`: sign in, then print one server's metrics, logs and alerts, history
first and then live, as they arrive. The first thing a newcomer runs after `make run`.

Both frontend sockets are opened (metrics and logs); each prints its history, then a marker at the
seam (`history_end`), then live frames. Alerts come on both sockets and are printed once (from the
metrics socket). A socket closed with a "may reconnect" code reconnects with the last position it
saw (`resume`), so nothing is missed; an expiring token is refreshed on the open socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from schemas.frontend_wire import (
    SERVER_FRAME,
    AlertFrame,
    AuthFrame,
    AuthRequiredFrame,
    AuthSuccessFrame,
    CloseCode,
    CoalescedFrame,
    ErrorFrame,
    HistoryEndFrame,
    HistoryLostFrame,
    LogFrame,
    MetricsData,
    MetricsFrame,
    Position,
)

from .pacing import Backoff
from .rest import RestClient, RestError


def demo_file() -> Path:
    """Where `make run` wrote the demo account (its API URL and credentials)."""
    if explicit := os.environ.get("FLEETPULSE_DEMO_FILE"):
        return Path(explicit)
    run_dir = os.environ.get("FLEETPULSE_RUN_DIR")
    if run_dir:
        return Path(run_dir) / "demo.json"
    return Path(os.environ.get("FLEETPULSE_STATE_DIR", ".state")) / "run" / "demo.json"


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_metrics(d: MetricsData) -> str:
    disks = " ".join(f"{x.mount} {x.percent:.0f}%" for x in d.disks[:3]) or "-"
    load = f"{d.load1:.2f}" if d.load1 is not None else "-"
    up, down = d.network.bytes_sent_per_second, d.network.bytes_recv_per_second
    net = f"↑{_human_bytes(up)}/s ↓{_human_bytes(down)}/s"
    return f"cpu {d.cpu_percent:5.1f}%  mem {d.memory_percent:5.1f}%  load {load}  disk {disks}  net {net}"


def _clock(t: datetime) -> str:
    return t.astimezone().strftime("%H:%M:%S")


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
                    auth = AuthFrame(
                        type="auth",
                        token=self.rest.access_token or "",
                        window_seconds=None if position else self.window_seconds,
                        lines=None if position else self.lines,
                        resume=position,
                    )
                    await ws.send(auth.model_dump_json(exclude_none=True))
                    async for raw in ws:
                        frame = _decode(raw)
                        if frame is None:
                            continue
                        backoff.reset()
                        position = await self._handle(ws, channel, frame) or position
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == CloseCode.TOKEN_EXPIRED:
                    await self.rest.refresh()
                elif code is not None and 4400 <= code < 4500:
                    reason = exc.rcvd.reason if exc.rcvd is not None else ""
                    raise RestError(f"{channel} socket refused (close {code}): {reason}") from exc
                self.emit(f"-- {channel}: connection closed (code {code}), reconnecting --")
            except OSError as exc:
                self.emit(f"-- {channel}: cannot connect ({exc}), retrying --")
            await asyncio.sleep(backoff.next_delay())

    async def _handle(self, ws: Any, channel: str, frame: Any) -> Position | None:
        if isinstance(frame, AuthSuccessFrame):
            self.emit(f"-- {channel}: signed in, server {frame.server_id} --")
        elif isinstance(frame, AuthRequiredFrame):
            token = await self.rest.refresh()
            await ws.send(AuthFrame(type="auth", token=token).model_dump_json(exclude_none=True))
        elif isinstance(frame, MetricsFrame):
            tag = "history" if frame.history or frame.position is None else "live   "
            self.emit(f"{_clock(frame.data.timestamp)} [{tag}] metrics  {format_metrics(frame.data)}")
            self._count_live(tag)
            return frame.position
        elif isinstance(frame, LogFrame):
            tag = "history" if frame.history or frame.position is None else "live   "
            d = frame.data
            source = f"{d.source}: " if d.source else ""
            self.emit(f"{_clock(d.timestamp)} [{tag}] log      {d.level:<8} {source}{d.message}")
            return frame.position
        elif isinstance(frame, HistoryEndFrame):
            self.emit(f"-- {channel}: end of history, live from here --")
            return frame.position
        elif isinstance(frame, HistoryLostFrame):
            self.emit(f"-- {channel}: a gap could not be streamed ({frame.reason}); see the REST history --")
            return frame.position
        elif isinstance(frame, AlertFrame):
            if channel == "metrics":
                self.emit(f"!! alert  {json.dumps(frame.data.model_dump(mode='json'))}")
            return frame.position
        elif isinstance(frame, CoalescedFrame):
            self.emit(f"-- {channel}: {frame.skipped} frame(s) skipped (slow terminal) --")
        elif isinstance(frame, ErrorFrame):
            self.emit(f"-- {channel}: error: {frame.message} --")
        return None

    def _count_live(self, tag: str) -> None:
        if tag.strip() == "live":
            self.live_seen += 1
            if self.max_live is not None and self.live_seen >= self.max_live:
                self.done.set()


def _decode(raw: str | bytes) -> Any:
    try:
        return SERVER_FRAME.validate_json(raw)
    except ValidationError:
        return None


def ws_base_for(api_url: str) -> str:
    if api_url.startswith("https://"):
        return "wss://" + api_url.removeprefix("https://").rstrip("/")
    return "ws://" + api_url.removeprefix("http://").rstrip("/")


def _demo_defaults(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if isinstance(v, str | int)}


async def watch(args: argparse.Namespace, out: TextIO) -> int:
    async with RestClient(args.api) as rest:
        await rest.login(args.email, args.password)
        server = await rest.find_server(args.server)
        print(f"watching {server['name']} ({server['id']}); Ctrl-C to stop", file=out, flush=True)
        watcher = Watcher(
            rest,
            ws_base_for(args.api),
            str(server["id"]),
            window_seconds=args.window,
            lines=args.lines,
            max_live=args.max_live,
            out=out,
        )
        await watcher.run()
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    demo = _demo_defaults(demo_file())
    parser = argparse.ArgumentParser(prog="fleetpulse", description="FleetPulse from a terminal.")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="print one server's metrics, logs and alerts: history, then live")
    w.add_argument("server", help="the server's name or id")
    w.add_argument(
        "--api", default=os.environ.get("FLEETPULSE_API_URL", demo.get("api_url", "http://127.0.0.1:8000"))
    )
    w.add_argument("--email", default=os.environ.get("FLEETPULSE_EMAIL", demo.get("email")))
    w.add_argument("--password", default=os.environ.get("FLEETPULSE_PASSWORD", demo.get("password")))
    w.add_argument("--window", type=int, default=600, help="seconds of metrics history to show first")
    w.add_argument("--lines", type=int, default=20, help="log lines of history to show first")
    w.add_argument("--max-live", type=int, default=None, help="exit after this many live metrics samples")
    args = parser.parse_args(argv)
    if not args.email or not args.password:
        parser.error(
            "--email and --password are needed (make run writes the demo account to .state/run/demo.json)"
        )
    stream = out or sys.stdout
    try:
        return asyncio.run(watch(args, stream))
    except KeyboardInterrupt:
        return 0
    except RestError as exc:
        print(f"fleetpulse watch: {exc}", file=sys.stderr)
        return 2
