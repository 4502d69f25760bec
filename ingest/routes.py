"""Ingest's routes: the agent socket, the legacy key pre-flight, health and metrics.

The handlers reach the process's `Runtime` through a `RuntimeRef` closed over at build time (not
through `request.app`), so another app may include these routes and enter ingest's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

from fastapi import APIRouter, Header, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from schemas import agent_wire as wire
from schemas.canonical import AgentEvent, utcnow
from schemas.problems import KINDS, PROBLEM_MEDIA_TYPE, problem

from .errors import DatabaseUnavailable, IngestError
from .ratelimit import RATE_LIMITED
from .runtime import Runtime, auth_failed_event
from .session import AgentSession, CloseReason, classify

log = logging.getLogger(__name__)

AGENT_SOCKET_PATH = "/api/v1/agents/ws"
KEY_PREFLIGHT_PATH = "/api/v1/api-keys/me"


class RuntimeRef:
    """Set by the lifespan while the app runs."""

    runtime: Runtime | None = None

    def get(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("ingest is not running (its lifespan was not entered)")
        return self.runtime


def build_router(ref: RuntimeRef) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(ref.get().metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(KEY_PREFLIGHT_PATH)
    async def key_preflight(
        request: Request, x_api_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """The legacy agent's pre-flight: 200 with the key's server, or 401."""
        runtime = ref.get()
        remote = request.client.host if request.client else "unknown"
        try:
            check = await runtime.auth.check(x_api_key or "", remote)
        except DatabaseUnavailable:
            return _problem("unavailable", "Service unavailable, retry later")
        if check.identity is None:
            runtime.metrics.refusals.labels(f"preflight_{check.reason}").inc()
            if check.reason == RATE_LIMITED:
                return _problem("rate-limited", "Too many failed attempts, retry later")
            return _unauthorized()
        identity = check.identity
        return JSONResponse(
            {
                "server_id": str(identity.server_id),
                "key_id": str(identity.key_id),
                "name": identity.name,
                "is_active": True,
            }
        )

    @router.websocket(AGENT_SOCKET_PATH)
    async def agent_socket(websocket: WebSocket) -> None:
        runtime = ref.get()
        task = asyncio.current_task()
        if task is not None:
            runtime.track_handler(task)
        await serve_agent(websocket, runtime)

    return router


def _problem(kind: str, detail: str) -> JSONResponse:
    """An error answer of the pre-flight: problem details, as the API answers (schemas/problems.py)."""
    body = problem(KINDS[kind], detail, KEY_PREFLIGHT_PATH)
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE)


def _unauthorized() -> JSONResponse:
    return _problem("unauthorized", wire.INVALID_KEY)


async def _send(websocket: WebSocket, frame: wire._Frame) -> None:
    await websocket.send({"type": "websocket.send", "text": frame.to_bytes().decode()})


async def _refuse(websocket: WebSocket, frame: wire._Frame | None, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        if frame is not None:
            await _send(websocket, frame)
        await websocket.close(code=code, reason=reason)


async def serve_agent(websocket: WebSocket, runtime: Runtime) -> None:
    """Authenticate the socket (nothing else is read before), then serve it until it ends."""
    settings = runtime.settings
    metrics = runtime.metrics
    remote = websocket.client.host if websocket.client else "unknown"
    await websocket.accept()
    if runtime.stopping:
        await _refuse(websocket, None, wire.CLOSE_TRY_AGAIN, "shutting down")
        return
    try:
        async with asyncio.timeout(settings.auth_timeout):
            message = await websocket.receive()
    except TimeoutError:
        metrics.refusals.labels("auth_timeout").inc()
        await _refuse(websocket, None, wire.CLOSE_POLICY, "authentication timeout")
        return
    if message["type"] == "websocket.disconnect":
        return
    text = message.get("text")
    if text is None:
        metrics.refusals.labels("binary").inc()
        await _refuse(websocket, None, wire.CLOSE_UNSUPPORTED, "binary frames are not accepted")
        return
    raw = text.encode()
    if len(raw) > settings.max_frame_bytes:
        metrics.refusals.labels("too_big").inc()
        await _refuse(websocket, None, wire.CLOSE_TOO_BIG, "frame too big")
        return
    try:
        # Only ValidationError, whatever the frame holds (a year-1 timestamp used to escape as an
        # OverflowError here: a traceback, and an attempt the failed-auth limiter never counted).
        frame = wire.decode(raw, settings.timestamp_window, utcnow())
    except ValidationError as exc:
        code, detail = classify(exc)
        frame = None
    else:
        code, detail = "auth_required", "the first frame must be `auth`"
    if not isinstance(frame, wire.AuthFrame):
        runtime.auth.by_address.failed(remote)
        metrics.refusals.labels("auth_required").inc()
        await _refuse(
            websocket,
            wire.ErrorFrame(message=wire.INVALID_FORMAT, code=code, detail=detail),
            wire.CLOSE_POLICY,
            "authentication required",
        )
        return
    try:
        check = await runtime.auth.check(frame.api_key, remote)
    except DatabaseUnavailable:
        metrics.refusals.labels("database_unavailable").inc()
        await _refuse(
            websocket,
            wire.ErrorFrame(message="Service unavailable, retry later", code="retry", retry=True),
            wire.CLOSE_TRY_AGAIN,
            "service unavailable",
        )
        return
    if check.identity is None and check.reason == RATE_LIMITED:
        metrics.refusals.labels("auth_rate_limited").inc()
        await _refuse(
            websocket,
            wire.ErrorFrame(
                message="Too many failed authentication attempts, retry later", code="rate_limited"
            ),
            wire.CLOSE_POLICY,
            "too many failed authentication attempts",
        )
        return
    if check.identity is None:
        metrics.refusals.labels(f"auth_{check.reason}").inc()
        with contextlib.suppress(IngestError):
            await runtime.publish_event(auth_failed_event(runtime, check.server_id, check.reason, remote))
        # The seed's frame, verbatim, then 1008 (the only refusal a legacy agent understands).
        await _refuse(
            websocket, wire.ErrorFrame(message=wire.INVALID_KEY), wire.CLOSE_POLICY, "invalid API key"
        )
        return
    await _serve(
        websocket,
        runtime,
        AgentSession(websocket, runtime, check.identity.key_id, check.identity.server_id, remote),
    )


async def _serve(websocket: WebSocket, runtime: Runtime, session: AgentSession) -> None:
    metrics = runtime.metrics
    runtime.register(session)
    outcome = CloseReason(1011, "internal error", flush=False)
    connected = False
    try:
        try:
            await runtime.db.claim_server(
                session.server_id,
                runtime.ingest_id,
                session.connection_id,
                session.key_id,
                session.remote,
                session.since,
            )
            session.claimed = True
            await runtime.publish_event(_event(runtime, session, "connected"))
        except IngestError as exc:
            metrics.refusals.labels("unavailable_at_connect").inc()
            outcome = CloseReason(wire.CLOSE_TRY_AGAIN, "service unavailable", flush=False)
            await _refuse(
                websocket,
                wire.ErrorFrame(
                    message="Service unavailable, retry later",
                    code="retry",
                    retry=True,
                    detail=str(exc)[:200],
                ),
                wire.CLOSE_TRY_AGAIN,
                "service unavailable",
            )
            return
        connected = True
        await _send(websocket, wire.AuthSuccessFrame(server_id=session.server_id))
        outcome = await session.run()
    except Exception as exc:  # noqa: BLE001 - a socket's failure must never escape into the server
        log.warning("agent socket %s ended by %r", session.connection_id, exc)
        outcome = CloseReason(1011, f"internal error: {type(exc).__name__}", flush=False)
        with contextlib.suppress(Exception):
            await websocket.close(code=1011)
    finally:
        was_current = runtime.unregister(session)
        superseded = outcome.superseded or not was_current
        for left in session.end(outcome.reason):
            runtime.fail_command(left.request, left.error, unless_stored=left.pending)
        if session.claimed:
            with contextlib.suppress(IngestError):
                await runtime.db.release_server(session.server_id, session.connection_id)
        if connected:
            event = _event(runtime, session, "disconnected", reason=f"{outcome.code}: {outcome.reason}")
            event = event.model_copy(update={"superseded": superseded})
            with contextlib.suppress(IngestError):
                await runtime.publish_event(event)


def _event(runtime: Runtime, session: AgentSession, kind: str, reason: str | None = None) -> AgentEvent:
    return AgentEvent.model_validate(
        {
            "server_id": session.server_id,
            "event": kind,
            "time": utcnow(),
            "connection_id": session.connection_id,
            "ingest_id": runtime.ingest_id,
            "dialect": session.dialect,
            "reason": reason,
            "remote": session.remote,
        }
    )
