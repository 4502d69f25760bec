"""`fleetpulse-api`: run the API service with uvicorn.

`python -m api --with-ingest` (or `fleetpulse-server`) runs the ingest service in the same
process, on the API's port: the small-deployment mode that `make run` uses.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from .app import create_app
from .settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fleetpulse-api")
    parser.add_argument(
        "--with-ingest", action="store_true", help="also serve ingest (the agent socket) on this port"
    )
    args = parser.parse_args(argv)
    uvicorn.Server(server_config(ApiSettings(), with_ingest=args.with_ingest)).run()


def server() -> None:
    """`fleetpulse-server`: ingest and API in one process."""
    main(["--with-ingest"])


def server_config(settings: ApiSettings, *, with_ingest: bool) -> uvicorn.Config:
    """The uvicorn server for the API alone or with ingest. Sockets use the sans-I/O websockets
    implementation (it honours the ping settings and is not deprecated); the transport's frame
    cap sits above the apps' own limits, which refuse, count and close with the protocol's codes."""
    app: Any
    max_frame = settings.live.max_frame_bytes
    ping_interval, ping_timeout = settings.ws_ping_interval, settings.ws_ping_timeout
    if with_ingest:
        from ingest.settings import IngestSettings

        from .combined import create_combined_app

        ingest_settings = IngestSettings(common=settings.common)
        app = create_combined_app(settings, ingest_settings)
        max_frame = max(max_frame, ingest_settings.max_frame_bytes)
        # Agents are the peers whose silence matters most: their heartbeat settings win.
        ping_interval, ping_timeout = ingest_settings.ws_ping_interval, ingest_settings.ws_ping_timeout
    else:
        app = create_app(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        ws="websockets-sansio",
        ws_ping_interval=ping_interval,
        ws_ping_timeout=ping_timeout,
        ws_max_size=4 * max_frame,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
