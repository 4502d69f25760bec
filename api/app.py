"""The API application factory.

`create_app(settings)` builds the app; nothing opens before its lifespan starts. The lifespan owns
every long-lived resource in an `AsyncExitStack`, so they close in reverse order of opening (the
database pool last: everything else may still write to it while it stops).

Adding a part (a router and a resource, the live hub for one): include the router below, and enter
the resource in the lifespan with `stack.enter_async_context(...)`, storing it in
`resources.extras`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from edge.http import BodyLimit, SecurityHeaders

from . import errors, expiry, openapi, web
from .commands import CommandBroker
from .db.pool import close_pool, open_pool
from .docs import install_asyncapi, install_docs, install_problem_pages
from .kafka import Producer
from .live.routes import LIVE_KEY
from .live.routes import router as live_router
from .live.service import LiveService
from .metrics import ApiMetrics
from .observe import ObserveMiddleware
from .ratelimit import RateLimiter
from .routes import (
    alerts,
    audit,
    auth,
    channels,
    commands,
    fleet,
    history,
    install,
    keys,
    ops,
    processes,
    servers,
)
from .settings import ApiSettings
from .state import Resources

API_PREFIX = "/api/v1"


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        common = settings.common
        async with AsyncExitStack() as stack:
            pool = await open_pool(
                common.database_url,
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
                command_timeout=settings.db_command_timeout_seconds,
            )
            stack.push_async_callback(close_pool, pool)
            producer = Producer(common.kafka_bootstrap, common.topic_prefix)
            await producer.start()
            stack.push_async_callback(producer.stop)
            broker = CommandBroker(common.kafka_bootstrap, common.topic_prefix, producer)
            await broker.start()
            stack.push_async_callback(broker.stop)
            metrics = ApiMetrics()
            metrics.lag_from("command_results", lambda: broker.lag)
            app.state.resources = Resources(
                settings=settings,
                pool=pool,
                producer=producer,
                commands=broker,
                metrics=metrics,
                login_limiter=RateLimiter(settings.login_attempts, settings.login_window_seconds),
                command_limiter=RateLimiter(settings.commands_per_minute, 60.0),
                account_failures=RateLimiter(
                    settings.login_failures_per_account, settings.login_window_seconds
                ),
                address_failures=RateLimiter(
                    settings.login_failures_per_address, settings.login_window_seconds
                ),
                password_limiter=RateLimiter(
                    settings.password_changes, settings.password_change_window_seconds
                ),
                key_check_failures=RateLimiter(
                    settings.key_check_failures, settings.key_check_window_seconds
                ),
            )
            sweeper = asyncio.create_task(
                expiry.run(pool, producer, settings.key_expiry_sweep_seconds), name="key-expiry"
            )
            stack.push_async_callback(_cancel, sweeper)
            # The live sockets' Kafka reader and hub; closed before the pool.
            live = await stack.enter_async_context(
                LiveService(settings.live, settings.common.kafka_bootstrap, settings.common.topic_prefix)
            )
            app.state.resources.extras[LIVE_KEY] = live
            # One subscription per open live socket (each socket follows one server's stream).
            metrics.sockets.set_function(lambda: live.hub.subscriber_count())
            yield

    app = FastAPI(
        title="FleetPulse API",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs with local assets (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_docs(app)
    install_problem_pages(app)
    install_asyncapi(app)
    app.state.settings = settings
    # A body past the limit is refused while it streams in (413), before it is read whole.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObserveMiddleware)

    errors.install(app)  # every error answer, and the last guard (added after: outermost)
    # Outermost: every answer carries the security headers, the last guard's 500 too.
    app.add_middleware(SecurityHeaders)

    for module in (auth, servers, fleet, keys, history, processes, commands, alerts, channels, audit):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(live_router, prefix=API_PREFIX)
    app.include_router(ops.router)
    app.include_router(install.router)  # /install.sh and /agent/wheels/: the one-line agent install
    openapi.install(app)
    web.install(app, settings.web_dir)  # the dashboard at `/`, after every API route
    return app
