"""Problem details (RFC 9457): the body of every REST error answer, and the catalogue of kinds.

An error answer is `application/problem+json`:

    {"type": "/problems/not-found", "title": "Not found", "status": 404,
     "detail": "server not found", "instance": "/api/v1/servers/..."}

`type` names the kind of problem: a stable URI reference, one per entry of `KINDS`, which the API
serves as a page describing the kind (`GET /problems/{slug}`); clients branch on it, never on the
human `detail`. `detail` is always a human sentence (the `{"detail": ...}` of the legacy REST
shape, so old clients that print it keep working). Validation problems add `errors`, the fields at
fault; 429s add `retry_after` (also the `Retry-After` header).

Shared by the API (`api/errors.py` builds every answer) and ingest's REST pre-flight, so both
speak one shape. No framework here: pydantic only.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/problems/"


class Kind(NamedTuple):
    slug: str
    status: int
    title: str
    description: str  # what it means and what a client should do

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.slug


_KINDS = (
    Kind(
        "bad-request",
        400,
        "Bad request",
        "The request could not be read at all (a body that is not "
        "valid form data, for one). Fix the request; sending it again unchanged fails again.",
    ),
    Kind(
        "unauthorized",
        401,
        "Not authenticated",
        "No valid credentials: no bearer token, an invalid "
        "one, an inactive user, a wrong email or password, a refresh token that was used already, or "
        "(`/api-keys/me`) a bad API key. Log in again.",
    ),
    Kind(
        "token-expired",
        401,
        "Token expired",
        "The access (or refresh) token has expired: refresh it "
        "(`POST /api/v1/auth/refresh`) and send the request again.",
    ),
    Kind(
        "forbidden",
        403,
        "Forbidden",
        "You can see the resource but your role does not allow this "
        "(a viewer running a command), or the server's owner has not allowed it (remote commands off, "
        "a command outside the allowlist).",
    ),
    Kind(
        "not-found",
        404,
        "Not found",
        "No such resource, or one you may not see (the answer is the "
        "same, so nothing is revealed), or no such path.",
    ),
    Kind(
        "method-not-allowed",
        405,
        "Method not allowed",
        "The path exists but not with this method; the `Allow` header lists the methods it takes.",
    ),
    Kind(
        "conflict",
        409,
        "Conflict",
        "The request conflicts with what exists (an email or username already taken).",
    ),
    Kind(
        "body-too-large",
        413,
        "Request body too large",
        "The request body is larger than the API reads (`FLEETPULSE_API_MAX_BODY_BYTES`, 1 MiB by "
        "default); it was refused before it was read whole. Send less.",
    ),
    Kind(
        "validation-error",
        422,
        "Invalid request",
        "A parameter or body field is missing, has the "
        "wrong type or lies outside its bounds; `errors` lists each field at fault (`loc`, `msg`, "
        "`type`). Fix those fields.",
    ),
    Kind(
        "range-too-large",
        422,
        "Range too large",
        "The request is valid but asks for more than one "
        "answer may hold (a history range, points, backtest samples, a log range): ask a shorter "
        "range or a coarser resolution, as `detail` says.",
    ),
    Kind(
        "quota-exceeded",
        422,
        "Quota exceeded",
        "You already have as many of these as a user may have (notification channels): delete one first.",
    ),
    Kind(
        "rate-limited",
        429,
        "Too many requests",
        "Too many attempts (logins, commands) in the window: "
        "wait `retry_after` seconds (the `Retry-After` header) and try again.",
    ),
    Kind(
        "internal-error",
        500,
        "Internal error",
        "Something failed on our side; it is logged. Trying "
        "again may work; if it keeps failing, report it with the time and the `instance`.",
    ),
    Kind(
        "agent-error",
        502,
        "Agent error",
        "The server's agent answered, but with a failure this "
        "request cannot be served from (it could not read the container's logs).",
    ),
    Kind(
        "unavailable",
        503,
        "Service unavailable",
        "The database or Kafka cannot be reached right now: "
        "retry later, with backoff. Nothing was changed unless the answer says so.",
    ),
    Kind(
        "agent-offline",
        503,
        "Agent not connected",
        "The server's agent is not connected, so the command was not sent. Retry when the server is online.",
    ),
    Kind(
        "agent-timeout",
        504,
        "Agent did not answer",
        "The agent did not answer within the command's "
        "timeout. The command may still run: look at the command history before sending it again.",
    ),
)
KINDS: dict[str, Kind] = {kind.slug: kind for kind in _KINDS}
# The kind an error of a status falls into when nothing more precise is known (routing errors,
# the framework's own HTTP errors).
BY_STATUS: dict[int, Kind] = {}
for _kind in _KINDS:
    BY_STATUS.setdefault(_kind.status, _kind)


def kind_for_status(status: int) -> Kind:
    """The kind of an error known only by its status; `about:blank` (RFC 9457 §4.2.1: the title is
    the status phrase) when no kind of the catalogue has that status."""
    found = BY_STATUS.get(status)
    if found is not None:
        return found
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Kind("", status, phrase, "")


class FieldError(BaseModel):
    """One field at fault in a validation problem."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(
        description="where the field is: `body`, `query`, `path` or `header`, then the field's path",
        examples=[["query", "limit"]],
    )
    msg: str = Field(description="what is wrong with it, for a person", examples=["Input should be >= 1"])
    type: str = Field(
        description="a stable machine-readable code of the error (pydantic's, or FleetPulse's own "
        "such as `time_out_of_range`, `finite_number`, `text_not_storable`, `invalid_cursor`)",
        examples=["greater_than_equal"],
    )
    input: Any = Field(
        default=None,
        description='the refused input, made safe to encode (NaN as "NaN", long text cut)',
        examples=[0],
    )
    ctx: dict[str, Any] | None = Field(
        default=None, description="the bound or values the error refers to", examples=[{"ge": 1}]
    )


class Problem(BaseModel):
    """An RFC 9457 problem details object: the body of every error answer."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="the kind of problem: a stable URI reference (`/problems/<kind>`, a page that "
        "describes it), or `about:blank` for an HTTP error with no kind of its own",
        examples=["/problems/not-found"],
    )
    title: str = Field(
        description="a short summary of the kind, the same for every occurrence", examples=["Not found"]
    )
    status: int = Field(description="the HTTP status code of the answer", examples=[404], ge=100, le=599)
    detail: str = Field(
        description="what went wrong this time, for a person (the legacy `detail`)",
        examples=["server not found"],
    )
    instance: str = Field(
        description="the request path this answer is about",
        examples=["/api/v1/servers/3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65"],
    )
    errors: list[FieldError] | None = Field(
        default=None,
        description="validation problems only: every field at fault",
        examples=[[{"loc": ["query", "limit"], "msg": "Input should be >= 1", "type": "greater_than_equal"}]],
    )
    retry_after: int | None = Field(
        default=None,
        description="rate-limited only: seconds to wait (as the `Retry-After` header)",
        examples=[30],
    )


def problem(
    kind: Kind,
    detail: str,
    instance: str,
    *,
    status: int | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    """A problem details body as a JSON-ready dict (extension members left out when None)."""
    body: dict[str, Any] = {
        "type": kind.type if kind.slug else "about:blank",
        "title": kind.title,
        "status": status or kind.status,
        "detail": detail,
        "instance": instance,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body
