"""`fleetpulse-ingest`: run the ingest service with uvicorn."""

from __future__ import annotations

import uvicorn

from edge.serving import uvicorn_options

from .app import create_app
from .settings import IngestSettings


def uvicorn_config(settings: IngestSettings, **overrides: object) -> uvicorn.Config:
    """The server settings the agent socket relies on: protocol-level pings detect dead peers,
    and a hard frame cap above `max_frame_bytes` (the app itself refuses, counts and closes with
    1009 above `max_frame_bytes`; the cap only bounds what is buffered before it can)."""
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "ws_max_size": 4 * settings.max_frame_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "lifespan": "on",
        # Trusted proxies only, TLS when set, connection caps, the request-head deadline; the
        # sockets are the sans-I/O websockets implementation (it honours the ping settings).
        **uvicorn_options(settings.common, settings),
    }
    options.update(overrides)
    return uvicorn.Config(create_app(settings), **options)  # type: ignore[arg-type]


def main() -> None:
    settings = IngestSettings()
    uvicorn.Server(uvicorn_config(settings)).run()


if __name__ == "__main__":
    main()
