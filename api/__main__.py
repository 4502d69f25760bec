"""`fleetpulse-api`: run the API service with uvicorn.

The API and ingest in one process (the small-deployment mode `make run` uses) is the launcher
`python -m ops.server` (`fleetpulse-server`): the API imports nothing of ingest.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from edge.serving import uvicorn_options

from .app import create_app
from .settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="fleetpulse-api").parse_args(argv)
    uvicorn.Server(server_config(ApiSettings())).run()


def server_config(
    settings: ApiSettings,
    *,
    app: Any = None,
    max_frame: int | None = None,
    ping: tuple[float, float] | None = None,
) -> uvicorn.Config:
    """The uvicorn server for the API (or for `app`, built around it). Sockets use the sans-I/O
    websockets implementation (it honours the ping settings and is not deprecated); the
    transport's frame cap sits above the apps' own limits, which refuse, count and close with the
    protocol's codes."""
    frame = settings.live.max_frame_bytes if max_frame is None else max_frame
    ping_interval, ping_timeout = (
        (settings.ws_ping_interval, settings.ws_ping_timeout) if ping is None else ping
    )
    return uvicorn.Config(
        create_app(settings) if app is None else app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        # Trusted proxies only, TLS when set, connection caps, the request-head deadline; the
        # sockets are the sans-I/O websockets implementation behind the caps.
        **uvicorn_options(settings.common, settings),
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_timeout,
        ws_max_size=4 * frame,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
