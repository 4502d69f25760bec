"""One process, one port: the ingest service and the API together, for small deployments.

`python -m ops.server` (or `fleetpulse-server`) serves it; `make run` uses it. It lives here, in
the launcher above both deployables, because the API and ingest import nothing of each other.

`create_combined_app` builds both apps, serves the API's routes and ingest's (the agent socket at
`/api/v1/agents/ws`) from the API app, and runs both lifespans: ingest's first, so it stops last
(agents keep their acknowledgements flowing while the API drains). Where both define a path
(`/health`, `/metrics`, the key pre-flight `/api/v1/api-keys/me`), the API's answers; ingest's
own metrics are at `/ingest/metrics`. Production runs the two apart, each scaled on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.__main__ import server_config
from api.app import create_app
from api.settings import ApiSettings
from ingest.app import create_app as create_ingest_app
from ingest.settings import IngestSettings


def create_combined_app(api_settings: ApiSettings, ingest_settings: IngestSettings) -> FastAPI:
    app = create_app(api_settings)
    ingest = create_ingest_app(ingest_settings)
    # Ingest's router (its docs routes aside) goes after the API's routes, so on a path both
    # define the API's route is found first.
    for route in ingest.router.routes:
        router = getattr(route, "original_router", None)  # an included APIRouter
        if isinstance(router, APIRouter):
            app.include_router(router, include_in_schema=False)

    @app.get("/ingest/metrics", include_in_schema=False)
    async def ingest_metrics() -> Response:
        return Response(generate_latest(ingest.state.ingest_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    api_lifespan = app.router.lifespan_context
    ingest_lifespan = ingest.router.lifespan_context

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with ingest_lifespan(ingest), api_lifespan(app):
            yield

    app.router.lifespan_context = lifespan
    app.state.ingest_app = ingest
    return app


def combined_config(settings: ApiSettings) -> uvicorn.Config:
    """The uvicorn server of the combined app: the API's, with ingest's frame cap and heartbeat."""
    ingest_settings = IngestSettings(common=settings.common)
    return server_config(
        settings,
        app=create_combined_app(settings, ingest_settings),
        max_frame=max(settings.live.max_frame_bytes, ingest_settings.max_frame_bytes),
        # Agents are the peers whose silence matters most: their heartbeat settings win.
        ping=(ingest_settings.ws_ping_interval, ingest_settings.ws_ping_timeout),
    )


def main() -> None:
    """`fleetpulse-server`: ingest and API in one process, on the API's host and port."""
    uvicorn.Server(combined_config(ApiSettings())).run()


if __name__ == "__main__":
    main()
