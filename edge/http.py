"""ASGI middleware every answer of a FleetPulse server passes: security headers, body limits.

Both are plain ASGI (no `BaseHTTPMiddleware`: no task per request, streaming answers and sockets
untouched) and cost one header scan per request.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The dashboard (served at `/`) and every JSON answer: nothing but this origin, never framed,
# no plugins, forms and <base> only to this origin. A path that needs more (the interactive API
# documentation runs inline scripts) sets its own Content-Security-Policy, which is kept.
DEFAULT_CSP = (
    "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
HSTS = b"max-age=31536000; includeSubDomains"


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
    a Content-Security-Policy (the answer's own, else `csp`), and HSTS on answers served over TLS
    (the connection's scheme, or a trusted proxy's X-Forwarded-Proto)."""

    def __init__(self, app: ASGIApp, csp: str = DEFAULT_CSP) -> None:
        self.app = app
        self.csp = csp.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                for name, value in self._headers(tls):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, tls: bool) -> Iterable[tuple[bytes, bytes]]:
        yield b"x-content-type-options", b"nosniff"
        yield b"x-frame-options", b"DENY"
        yield b"referrer-policy", b"no-referrer"
        yield b"content-security-policy", self.csp
        if tls:
            yield b"strict-transport-security", HSTS


class BodyTooLarge(HTTPException):
    """A request body past the limit: raised from `receive`, so it reaches the app's handler for
    HTTP errors (a 413 in the app's own error shape) wherever the body was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


class BodyLimit:
    """Refuses a request body past `max_bytes` while it streams in: at once when its
    Content-Length says so (before a byte of it is read), else as soon as the bytes read pass the
    limit. Nothing past the limit is ever buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:

            async def refuse() -> Message:
                raise BodyTooLarge(limit)

            await self.app(scope, refuse, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
