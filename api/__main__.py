"""`fleetpulse-api`: run the API service with uvicorn.

`python -m api --with-ingest` (or `fleetpulse-server`) runs the ingest service in the same
process, on the API's port: the small-deployment mode that `make run` uses.
"""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fleetpulse-api")
    parser.add_argument(
        "--with-ingest", action="store_true", help="also serve ingest (the agent socket) on this port"
    )
    args = parser.parse_args(argv)
    settings = ApiSettings()
    if args.with_ingest:
        _serve_combined(settings)
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def server() -> None:
    """`fleetpulse-server`: ingest and API in one process."""
    main(["--with-ingest"])


def _serve_combined(settings: ApiSettings) -> None:
    from ingest.settings import IngestSettings

    from .combined import create_combined_app

    ingest_settings = IngestSettings(common=settings.common)
    app = create_combined_app(settings, ingest_settings)
    # The agent socket's transport settings, as ingest's own server sets them.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        ws_ping_interval=ingest_settings.ws_ping_interval,
        ws_ping_timeout=ingest_settings.ws_ping_timeout,
        ws_max_size=4 * ingest_settings.max_frame_bytes,
        ws="websockets-sansio",
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
