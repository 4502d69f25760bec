"""`fleetpulse watch`: history, the seam, then live; a socket closed with a "may reconnect" code
resumes from the last position; an expiring token is refreshed on the open socket."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from fleetpulse_agent.console.watch import Watcher, ws_base_for
from fleetpulse_agent.rest import RestClient
from schemas.frontend_wire import (
    AuthRequiredFrame,
    AuthSuccessFrame,
    CloseCode,
    HistoryEndFrame,
    LogData,
    LogFrame,
    MetricsData,
    MetricsFrame,
    Position,
    encode,
)

SERVER = uuid.uuid4()
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def metrics(n: int, offset: int | None) -> str:
    data = MetricsData(timestamp=T0 + timedelta(seconds=5 * n), cpu_percent=float(n), memory_percent=50.0)
    position = None if offset is None else Position(partition=0, offset=offset)
    return encode(MetricsFrame(data=data, position=position, history=offset is None))


class FakeRest(RestClient):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.access_token = "t1"
        self.refreshed = 0

    async def refresh(self) -> str:
        self.refreshed += 1
        self.access_token = f"t{self.refreshed + 1}"
        return self.access_token


async def test_history_then_live_resume_after_a_drop_and_token_refresh() -> None:
    auths: list[dict[str, Any]] = []
    connections = {"metrics": 0}
    expires = datetime.now(UTC) + timedelta(minutes=5)

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        channel = "metrics" if "/ws/metrics/" in ws.request.path else "logs"
        auth = json.loads(await ws.recv())
        auths.append({"channel": channel, **auth})
        await ws.send(encode(AuthSuccessFrame(server_id=SERVER, channel=channel, expires_at=expires)))
        if channel == "logs":
            log = LogData(level="INFO", message="booted", timestamp=T0, entry_id=uuid.uuid4())
            await ws.send(encode(LogFrame(data=log, position=None, history=True)))
            await ws.send(encode(HistoryEndFrame(position=Position(partition=1, offset=3))))
            await ws.wait_closed()
            return
        connections["metrics"] += 1
        if connections["metrics"] == 1:
            await ws.send(metrics(1, None))
            await ws.send(metrics(2, None))
            await ws.send(encode(HistoryEndFrame(position=Position(partition=0, offset=4))))
            await ws.send(metrics(3, 5))
            await ws.close(CloseCode.SLOW_CONSUMER, "too slow")
            return
        await ws.send(metrics(4, 6))
        await ws.send(encode(AuthRequiredFrame(expires_at=expires)))
        again = json.loads(await ws.recv())
        auths.append({"channel": "metrics-refresh", **again})
        await ws.send(metrics(5, 7))
        await ws.wait_closed()

    server: Server = await serve(handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    out = io.StringIO()
    rest = FakeRest()
    try:
        watcher = Watcher(
            rest,
            ws_base_for(f"http://127.0.0.1:{port}"),
            str(SERVER),
            window_seconds=600,
            lines=20,
            max_live=3,
            out=out,
        )
        await asyncio.wait_for(watcher.run(), 30)
    finally:
        await rest.close()
        server.close()
        await server.wait_closed()
    text = out.getvalue()
    lines = [line for line in text.splitlines() if "metrics" in line and "cpu" in line]
    assert [line.split("]")[0].split("[")[1].strip() for line in lines] == [
        "history",
        "history",
        "live",
        "live",
        "live",
    ]
    assert text.index("-- metrics: end of history, live from here --") < text.index("[live   ] metrics")
    assert "[history] log      INFO     booted" in text
    first = [a for a in auths if a["channel"] == "metrics"]
    assert first[0] == {
        "channel": "metrics",
        "type": "auth",
        "token": "t1",
        "window_seconds": 600,
        "resolution": "raw",
        "lines": 20,
    }
    # Reconnected after 4008 with the last position seen, instead of the history again.
    assert first[1]["resume"] == {"partition": 0, "offset": 5} and "window_seconds" not in first[1]
    refresh = [a for a in auths if a["channel"] == "metrics-refresh"]
    assert refresh and refresh[0]["token"] == "t2" and rest.refreshed == 1
