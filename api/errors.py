"""The API's error root, and every answer to an error, in one place.

Every error answer of every route is RFC 9457 problem details (`application/problem+json`,
`schemas/problems.py` holds the body and the catalogue of kinds): `type` (a stable URI reference
per kind), `title`, `status`, `detail` (a human sentence, the legacy `{"detail": ...}`), `instance`
(the request path), plus `errors` (the fields at fault) on validation problems and `retry_after`
on 429s.

Routes raise the `ApiError`s below; `install(app)` registers the handlers that turn them, the
framework's own HTTP errors (404 and 405 from routing), request validation errors and the database
layer's errors into problems, so no route builds an error response by hand, plus a last guard that
answers any other exception with a 500 problem without dropping the client's kept-alive connection.
`responses(...)` describes the same answers in the OpenAPI document, from the same classes.

A validation error's answer echoes each refused input, made safe to encode first: a client may
send what JSON cannot carry back (NaN, `1e309`, a lone surrogate), and an echo that failed to
encode used to turn the 422 itself into a 500.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.problems import KINDS, PROBLEM_MEDIA_TYPE, Kind, kind_for_status, problem

from .db.errors import DatabaseUnavailable, DuplicateError, InvalidData

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a route answers; `kind` is its entry of `schemas.problems.KINDS`."""

    status_code: ClassVar[int] = 500
    kind: ClassVar[str] = "internal-error"
    retriable: ClassVar[bool] = False

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers

    def extensions(self) -> dict[str, Any]:
        """Extension members of the problem body (none by default)."""
        return {}


class BadRequest(ApiError):
    status_code = 400
    kind = "bad-request"


class Unauthorized(ApiError):
    status_code = 401
    kind = "unauthorized"

    def __init__(self, detail: str = "not authenticated") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class TokenExpired(Unauthorized):
    kind = "token-expired"

    def __init__(self, detail: str = "token expired") -> None:
        super().__init__(detail)


class Forbidden(ApiError):
    status_code = 403
    kind = "forbidden"


class NotFound(ApiError):
    status_code = 404
    kind = "not-found"


class Conflict(ApiError):
    status_code = 409
    kind = "conflict"


class Unprocessable(ApiError):
    """Invalid input found by a route (not by the request's schema). With `loc`, the problem's
    `errors` names the field, as for a schema validation error."""

    status_code = 422
    kind = "validation-error"

    def __init__(
        self,
        detail: str,
        *,
        loc: Sequence[str | int] | None = None,
        error_type: str = "value_error",
        errors: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(detail)
        if errors is not None:
            self.errors: list[dict[str, Any]] | None = validation_errors(errors)
        elif loc is not None:
            self.errors = [{"loc": [echo(p) for p in loc], "msg": _text(detail), "type": error_type}]
        else:
            self.errors = None

    @classmethod
    def of(cls, errors: Sequence[Any], prefix: Sequence[str | int] = ("body",)) -> Unprocessable:
        """From a pydantic `ValidationError.errors()` of a model built in a route from the body."""
        located = [{**e, "loc": (*prefix, *e.get("loc", ()))} for e in errors]
        items = validation_errors(located)
        return cls(summary(items), errors=located)

    def extensions(self) -> dict[str, Any]:
        return {} if self.errors is None else {"errors": self.errors}


class RangeTooLarge(ApiError):
    """Valid input that asks for more than one answer may hold."""

    status_code = 422
    kind = "range-too-large"


class QuotaExceeded(ApiError):
    status_code = 422
    kind = "quota-exceeded"


class TooManyRequests(ApiError):
    status_code = 429
    kind = "rate-limited"
    retriable = True

    def __init__(self, detail: str, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after)})

    def extensions(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class BadGateway(ApiError):
    """The agent answered, but with a failure the request cannot be served from."""

    status_code = 502
    kind = "agent-error"


class Unavailable(ApiError):
    status_code = 503
    kind = "unavailable"
    retriable = True


class AgentOffline(Unavailable):
    kind = "agent-offline"


class GatewayTimeout(ApiError):
    status_code = 504
    kind = "agent-timeout"
    retriable = True


class InternalError(ApiError):
    """Not raised by routes: the kind of the last guard's 500, for `responses`."""


# The framework's own errors and the database layer's, as the kinds they are answered with.
VALIDATION = KINDS["validation-error"]
DATABASE_UNAVAILABLE = "database unavailable, retry later"

# --- the answers ---------------------------------------------------------------------------------

ECHO_TEXT = 200  # characters of a refused string echoed at most
ECHO_ITEMS = 20  # items of a refused list or object echoed at most
SUMMARY_ERRORS = 3  # fields named in a validation problem's `detail` (all are in `errors`)


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
    """Each field at fault as `{loc, msg, type, input?, ctx?}` (pydantic's shape), every part
    safe to encode."""
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


def summary(errors: Sequence[dict[str, Any]]) -> str:
    """A validation problem's `detail`: the first fields at fault, for a person."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:SUMMARY_ERRORS]]
    more = len(errors) - SUMMARY_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


def instance_of(scope: Scope) -> str:
    """The request's path as it was sent (percent-encoded, so always safe to encode)."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("ascii", "backslashreplace")
    return _text(str(scope.get("path", "")))


def answer(
    scope: Scope,
    kind: Kind,
    detail: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    """The one way an error answer is made."""
    body = problem(kind, _text(detail), instance_of(scope), status=status, **(extensions or {}))
    return JSONResponse(body, status_code=body["status"], headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def for_api_error(scope: Scope, exc: ApiError) -> JSONResponse:
    return answer(scope, KINDS[exc.kind], exc.detail, headers=exc.headers, extensions=exc.extensions())


class InternalErrors:
    """The last guard: an exception no handler answered becomes a 500 problem here, logged with
    its traceback (or, raised from a middleware, the problem its kind is). Starlette's own guard
    re-raises after answering, and uvicorn then drops the kept-alive connection: the client's next
    request on it fails. Here the answer completes and the connection stays usable."""

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
        except Exception as exc:
            if started:
                log.exception("error after answering %s %s", scope.get("method"), scope.get("path"))
                raise  # half an answer is out: nothing sensible is left to send
            if isinstance(exc, ApiError):
                response = for_api_error(scope, exc)
            elif isinstance(exc, DatabaseUnavailable):
                response = answer(scope, KINDS["unavailable"], DATABASE_UNAVAILABLE)
            else:
                log.exception("unhandled error answering %s %s", scope.get("method"), scope.get("path"))
                response = answer(scope, KINDS["internal-error"], "internal error")
            await response(scope, receive, send)


def allowed_methods(request: Request, fallback: str) -> str:
    """Every method the OpenAPI document gives this path (Starlette's own 405 names only the first
    route that matched the path, and FastAPI makes one route per method); `fallback` for a path
    outside the document."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(m.upper() for m in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) if methods else fallback


def install(app: FastAPI) -> None:
    """Register every error answer of the API on `app` (called once by `create_app`)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return for_api_error(request.scope, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's 404 and 405 (with its `Allow` header), and the framework's own 400s.
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
        return answer(
            request.scope,
            kind_for_status(exc.status_code),
            detail,
            status=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        return answer(request.scope, VALIDATION, summary(errors), extensions={"errors": errors})

    @app.exception_handler(InvalidData)
    async def invalid_data(request: Request, exc: InvalidData) -> JSONResponse:
        return answer(request.scope, VALIDATION, f"a value cannot be stored: {_text(str(exc))}")

    @app.exception_handler(DuplicateError)
    async def duplicate(request: Request, exc: DuplicateError) -> JSONResponse:
        return answer(request.scope, KINDS["conflict"], "this already exists")

    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return answer(request.scope, KINDS["unavailable"], DATABASE_UNAVAILABLE)

    # Outermost of the application's middleware: it also guards the others.
    app.add_middleware(InternalErrors)
