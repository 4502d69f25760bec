"""The ingest application factory.

`create_app(settings)` builds the app; its lifespan owns the process's `Runtime` (database pool,
producer, command consumer, presence loop). Another app can serve ingest on its own port by
including `app.router.routes` and entering `app.router.lifespan_context(app)`: the routes find the
runtime through a reference closed over here, not through the app they are mounted on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from edge.http import BodyLimit, SecurityHeaders

from .metrics import IngestMetrics
from .routes import RuntimeRef, build_router
from .runtime import Runtime
from .settings import IngestSettings


def create_app(settings: IngestSettings) -> FastAPI:
    ref = RuntimeRef()
    metrics = IngestMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, metrics)
        await runtime.start()
        ref.runtime = runtime
        app.state.ingest_runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()
            ref.runtime = None

    app = FastAPI(title="FleetPulse ingest", lifespan=lifespan)
    app.state.settings = settings
    app.state.ingest_metrics = metrics
    app.include_router(build_router(ref))
    # Ingest reads no request body (its one REST route is a GET): anything past a few KiB is refused.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
