"""The API application factory.

`create_app(settings)` builds the app; nothing opens before its lifespan starts. The lifespan owns
every long-lived resource in an `AsyncExitStack`, so they close in reverse order of opening (the
database pool last: everything else may still write to it while it stops).

Adding a part (a router and a resource, the live hub for one): include the router below, and enter
the resource in the lifespan with `stack.enter_async_context(...)`, storing it in
`resources.extras`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from . import db
from .errors import ApiError
from .settings import ApiSettings
from .state import Resources

API_PREFIX = "/api/v1"


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await db.open_pool(
                settings.common.database_url,
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
                command_timeout=settings.db_command_timeout_seconds,
            )
            stack.push_async_callback(db.close_pool, pool)
            app.state.resources = Resources(settings=settings, pool=pool)
            yield

    app = FastAPI(
        title="FleetPulse API",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(db.DatabaseUnavailable)
    async def database_unavailable(request: Request, exc: db.DatabaseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
