"""`fleetpulse-ingest`: run the ingest service with uvicorn."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
