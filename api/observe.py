"""One ASGI middleware for what every HTTP request leaves behind: its Prometheus counters and
latency, and, for a state-changing request, its audit row (who, what, when, from where, result).

The audit row is written after the answer is sent and even when the request failed (a refused
command or a failed login is exactly what an audit trail is for). Every state-changing request is
audited, and so is any other request whose route marks itself (`audit_always`: a container log
read sends a command to an agent). The detail is made storable first (no NUL, no lone surrogate:
jsonb holds neither), so what the client sent cannot cost the row; if the row still cannot be
written, it is written again without its detail, saying so. A failure to write even that is
logged, never turned into an error for a request that has already been answered.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db import audit as audit_db
from .db.pool import connection
from .state import Resources

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Not state changes even though they are POSTs: token refresh would flood the trail otherwise.
NOT_AUDITED = frozenset({"/api/v1/auth/refresh"})


class ObserveMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            await self._record(scope, status_code, time.perf_counter() - started)

    async def _record(self, scope: Scope, status_code: int, elapsed: float) -> None:
        resources: Resources | None = getattr(scope["app"].state, "resources", None)
        if resources is None:
            return
        route: BaseRoute | None = scope.get("route")
        template = _template(scope) if route is not None else "<unmatched>"
        method = scope["method"]
        resources.metrics.requests.labels(method, template, str(status_code)).inc()
        resources.metrics.latency.labels(method, template).observe(elapsed)
        state: dict[str, Any] = scope.get("state", {})
        if template == "<unmatched>" or scope["path"] in NOT_AUDITED:
            return
        if method not in STATE_CHANGING and not state.get("audit_always"):
            return
        server_id = state.get("audit_server_id") or _uuid(scope.get("path_params", {}).get("server_id"))
        client = scope.get("client")
        detail: dict[str, object] = storable(state.get("audit_detail", {}))
        lost: dict[str, object] = {"detail_lost": "the request's detail could not be stored"}
        for attempt in (detail, lost):
            try:
                async with connection(resources.pool) as conn:
                    await audit_db.insert_audit(
                        conn,
                        user_id=state.get("user_id"),
                        server_id=server_id,
                        method=method,
                        path=storable(scope["path"]),
                        action=getattr(route, "name", template),
                        status=status_code,
                        client=client[0] if client else None,
                        detail=attempt,
                    )
                return
            except Exception:
                log.exception("audit row not written for %s %s (%s)", method, scope["path"], status_code)
        log.error("audit row lost for %s %s (%s)", method, scope["path"], status_code)


def storable(value: Any) -> Any:
    """`value` as PostgreSQL text and jsonb can hold it: NUL and lone surrogates shown as their
    escapes, recursively; other values as they are."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\\u0000")
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def _template(scope: Scope) -> str:
    """The request's path with each path parameter's segment put back as `{name}` (a bounded
    label set for the metrics, whatever ids the requests carry)."""
    values = {str(value): name for name, value in scope.get("path_params", {}).items()}
    segments = scope["path"].split("/")
    return "/".join("{" + values[s] + "}" if s in values else s for s in segments)


def _uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def audit_server(scope_state: Any, server_id: uuid.UUID, **detail: object) -> None:
    """Name the server a request acted on when it is not in the path (set by the route)."""
    scope_state.audit_server_id = server_id
    if detail:
        scope_state.audit_detail = {k: str(v) for k, v in detail.items()}


def audit_always(scope_state: Any) -> None:
    """Audit this request whatever its method (a read that acts on a server)."""
    scope_state.audit_always = True


def audit_detail(scope_state: Any, **detail: object) -> None:
    """Add what a request acted on to its audit row (the row's `detail`)."""
    current = dict(getattr(scope_state, "audit_detail", {}) or {})
    current.update({k: str(v) for k, v in detail.items()})
    scope_state.audit_detail = current
