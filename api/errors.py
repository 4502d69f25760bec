"""The API's error root, and every answer to an error, in one place.

Routes raise the `ApiError`s below; `install(app)` registers the handlers that turn them, the
database layer's errors and request validation errors into `{"detail": ...}` answers, so no route
builds an error response by hand, plus a last guard that answers any other exception with a 500
without dropping the client's kept-alive connection.

A validation error's answer echoes each refused input, made safe to encode first: a client may
send what JSON cannot carry back (NaN, `1e309`, a lone surrogate), and an echo that failed to
encode used to turn the 422 itself into a 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db.errors import DatabaseUnavailable, InvalidData

log = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 500
    retriable = False

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, detail: str = "not authenticated") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Unprocessable(ApiError):
    status_code = 422


class TooManyRequests(ApiError):
    status_code = 429
    retriable = True

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})


class Unavailable(ApiError):
    status_code = 503
    retriable = True


class GatewayTimeout(ApiError):
    status_code = 504
    retriable = True


class BadGateway(ApiError):
    """The agent answered, but with a failure the request cannot be served from."""

    status_code = 502


# --- the answers ---------------------------------------------------------------------------------

ECHO_TEXT = 200  # characters of a refused string echoed at most
ECHO_ITEMS = 20  # items of a refused list or object echoed at most


def echo(value: Any, depth: int = 0) -> Any:
    """`value` as JSON can carry it: non-finite floats as their name, text without lone
    surrogates (escaped), everything cut to a readable size."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bytes):
        return _text(value.decode("utf-8", "replace"))
    if depth >= 4:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())[:ECHO_ITEMS]
        return {_text(str(k)): echo(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [echo(v, depth + 1) for v in list(value)[:ECHO_ITEMS]]
    return _text(str(value))


def _text(value: str) -> str:
    cut = value if len(value) <= ECHO_TEXT else value[:ECHO_TEXT] + "..."
    # A lone surrogate cannot be encoded as UTF-8: shown as its escape (\ud800).
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's shape (`type`, `loc`, `msg`, `input`, `ctx`), every part safe to encode."""
    answer: list[dict[str, Any]] = []
    for error in errors:
        item: dict[str, Any] = {
            "type": str(error.get("type", "")),
            "loc": [echo(part) for part in error.get("loc", ())],
            "msg": _text(str(error.get("msg", ""))),
        }
        if "input" in error:
            item["input"] = echo(error["input"])
        if error.get("ctx"):
            item["ctx"] = {str(k): echo(v) for k, v in error["ctx"].items()}
        answer.append(item)
    return answer


class InternalErrors:
    """The last guard: an exception no handler answered becomes a 500 here, logged with its
    traceback. Starlette's own guard re-raises after answering, and uvicorn then drops the
    kept-alive connection: the client's next request on it fails. Here the answer completes and
    the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half an answer is out: nothing sensible is left to send
            response = JSONResponse({"detail": "internal error"}, status_code=500)
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register every error answer of the API on `app` (called once by `create_app`)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc.errors())}, status_code=422)

    @app.exception_handler(InvalidData)
    async def invalid_data(request: Request, exc: InvalidData) -> JSONResponse:
        return JSONResponse({"detail": f"a value cannot be stored: {_text(str(exc))}"}, status_code=422)

    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)

    # Outermost of the application's middleware: it also guards the others.
    app.add_middleware(InternalErrors)
