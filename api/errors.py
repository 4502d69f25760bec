"""The API's error root. Routes raise these; one exception handler turns them into
`{"detail": ...}` answers, so no route builds an error response by hand."""

from __future__ import annotations


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
