"""The OpenAPI document, as FastAPI builds it from the routes, finished in one place.

- Every error answer is problem details: FastAPI's own 422 schema (`HTTPValidationError`) is
  replaced by `Problem` (`schemas/problems.py`) under `application/problem+json`.
- Every operation lists every error it can answer, each status with its problem kinds (described,
  with an example body): the kinds every operation of its sort can give (`_common_kinds`: 500 for
  all; 401 for an authenticated one; 404 with a path parameter; 422 with input; 413 with a body;
  503 where the database or Kafka is behind it), and those its route declares with `problems(...)` (403, 409,
  429, 502, the agent's 503 and 504...). `tests/integration/test_api_openapi.py` walks the app
  and fails on an answer whose status its operation does not list.
- A legacy list (a bare array by default, `api/pagination.py`) also lists its page answer, under
  the page media type, with the page model as a component.
- Tags are described, and the API-key header (`/api-keys/me`) is a security scheme next to the
  bearer token.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from schemas.problems import KINDS, PROBLEM_MEDIA_TYPE, FieldError, Kind, Problem, problem

from .models import EXAMPLE_CHANNEL, EXAMPLE_EPISODE, EXAMPLE_KEY, EXAMPLE_RULE, EXAMPLE_SERVER, EXAMPLE_USER
from .pagination import PAGE_MEDIA_TYPE, PAGE_MODEL_KEY

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEMS_KEY = "x-problems"
# Paths served without the database or Kafka behind them (no 503 unavailable).
_NO_BACKEND = ("/health", "/metrics", "/install.sh", "/agent/wheels/")

# A path, query or header parameter that its route leaves undescribed takes its text and example
# here, by name: one text for `server_id` across every operation that has it. A route's own
# `Path(description=...)`/`Query(description=...)` wins. `tests/unit/test_openapi_fields.py` fails on
# a parameter with neither.
PARAMETERS: dict[str, tuple[str, object]] = {
    "server_id": ("the server's id (a server you own or that is shared with you)", EXAMPLE_SERVER),
    "user_id": ("the id of the user the server is shared with", EXAMPLE_USER),
    "key_id": (
        "the API key's id (from `GET /api-keys/server/{server_id}`; never the key itself)",
        EXAMPLE_KEY,
    ),
    "rule_id": ("the alert rule's id", EXAMPLE_RULE),
    "threshold_id": ("the threshold rule's id (the legacy spec's name for an alert rule)", EXAMPLE_RULE),
    "episode_id": (
        "the alert episode's id: one firing of one rule on one server, until it resolves",
        EXAMPLE_EPISODE,
    ),
    "channel_id": ("the notification channel's id", EXAMPLE_CHANNEL),
    "x-api-key": (
        "the agent's API key (`fpk_...`), as the agent sends it",
        "fpk_Zx8s0d6lq3rT1vN4bW7yH2cK9mP5aE0u",
    ),
    "metric": ("which server-wide metric to read (percent, bytes, or load average)", "cpu_percent"),
    "resolution": (
        "raw: the samples as stored; 1m, 1h: one-minute or one-hour buckets (min, mean, max); auto: the "
        "finest that fits the window and the page",
        "auto",
    ),
    "mount": ("the disk's mount point, as the agent reports it", "/"),
    "interface": ("the network interface's name, as the agent reports it", "eth0"),
    "level": (
        "only lines at these levels (repeat the parameter for several); all levels when absent",
        ["ERROR"],
    ),
    "source": ("only lines from this source (the agent's log source, e.g. a unit or a file)", "nginx"),
    "container_id": ("the container's id or name, as the agent reports it", "web"),
    "action": ("what to do with the container", "restart"),
    "tail": ("how many of the newest log lines to return", 100),
    "state": ("only episodes in this state; all when absent", "firing"),
    "severity": ("only episodes of this severity; all when absent", "critical"),
    "name": ("a wheel file's name, as `/install.sh` asks for it", "fleetpulse_agent-0.1.0-py3-none-any.whl"),
    "tag": ("only servers with every one of these tags (repeat the parameter for several)", ["prod"]),
    "status": (
        "only servers in one of these states (repeat the parameter for several)",
        ["offline", "stale"],
    ),
    "start": ("the window's start, inclusive (RFC 3339 with an offset)", "2026-01-01T11:00:00Z"),
    "end": ("the window's end, exclusive (RFC 3339 with an offset)", "2026-01-01T12:00:00Z"),
    "q": ("only lines whose message contains this text", "timeout"),
}


def _describe(parameter: dict[str, Any]) -> None:
    known = PARAMETERS.get(parameter["name"].lower())
    if known is None:
        return
    description, example = known
    parameter.setdefault("description", description)
    if "example" not in parameter and not parameter.get("examples") and not parameter.get("deprecated"):
        parameter["example"] = example


TAGS: list[dict[str, str]] = [
    {"name": "auth", "description": "Accounts: register, log in, rotate refresh tokens, log out."},
    {"name": "servers", "description": "Servers, their sharing with other users, the remote-command switch."},
    {"name": "fleet", "description": "Every visible server with its newest figures, for the fleet page."},
    {"name": "api keys", "description": "The agents' API keys (the plaintext is shown once)."},
    {"name": "history", "description": "Stored metrics, processes and logs, bounded and paged."},
    {"name": "commands", "description": "Remote commands, Docker actions, the command history."},
    {"name": "alerts", "description": "Alert rules, ChatOps thresholds, episodes, backtests."},
    {"name": "notification channels", "description": "Where an owner's alerts are sent."},
    {"name": "audit", "description": "The trail of every state-changing request."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "agent install", "description": "The one-line agent install script and its wheels."},
]
API_KEY_SCHEME = "ApiKeyHeader"


def problems(*slugs: str) -> dict[str, Any]:
    """`openapi_extra` of a route: the problem kinds it can answer besides the common ones
    (`_common_kinds`). Merge with `|` into another extra."""
    for slug in slugs:
        if slug not in KINDS:
            raise ValueError(f"no problem kind {slug!r}")
    return {PROBLEMS_KEY: list(slugs)}


def _common_kinds(path: str, operation: dict[str, Any]) -> list[str]:
    kinds = ["internal-error"]
    if operation.get("security"):
        kinds += ["unauthorized", "token-expired"]
    parameters = operation.get("parameters", [])
    if any(p["in"] == "path" for p in parameters):
        kinds.append("not-found")
    if parameters or "requestBody" in operation:
        kinds.append("validation-error")
    if "requestBody" in operation:
        kinds.append("body-too-large")  # edge/http.py's BodyLimit, before the body is read whole
    if not path.startswith(_NO_BACKEND):
        kinds.append("unavailable")
    return kinds


def _example(kind: Kind, path: str) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if kind.slug == "validation-error":
        extra["errors"] = [
            {"loc": ["query", "limit"], "msg": "Input should be >= 1", "type": "greater_than_equal"}
        ]
    if kind.slug == "rate-limited":
        extra["retry_after"] = 30
    return problem(kind, kind.title.lower(), path, **extra)


def _error_responses(path: str, kinds: list[str]) -> dict[str, Any]:
    by_status: dict[int, list[Kind]] = {}
    for slug in dict.fromkeys(kinds):
        by_status.setdefault(KINDS[slug].status, []).append(KINDS[slug])
    responses: dict[str, Any] = {}
    for status, found in sorted(by_status.items()):
        responses[str(status)] = {
            "description": " Or: ".join(f"`{k.type}` ({k.title}): {k.description}" for k in found),
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": PROBLEM_REF},
                    "examples": {k.slug: {"summary": k.title, "value": _example(k, path)} for k in found},
                }
            },
        }
    return responses


def _kind_responses() -> dict[str, Any]:
    """One reusable response per problem kind (405 and 400 are the framework's, on any path)."""
    return {
        kind.slug: _error_responses("/api/v1/servers", [kind.slug])[str(kind.status)]
        for kind in KINDS.values()
    }


def _component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The models as OpenAPI components (refs between them rewritten)."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


def finish(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(_component_schemas(Problem, FieldError))
    doc["components"]["responses"] = _kind_responses()
    doc["components"].setdefault("securitySchemes", {})[API_KEY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "an agent's API key (`fpk_...`), from `POST /api/v1/api-keys`",
    }
    doc["tags"] = TAGS
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            declared = operation.pop(PROBLEMS_KEY, [])
            for parameter in operation.get("parameters", []):
                _describe(parameter)
            if any(
                p["in"] == "header" and p["name"].lower() == "x-api-key"
                for p in operation.get("parameters", [])
            ):
                operation["security"] = [{API_KEY_SCHEME: []}]
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if s.startswith(("4", "5"))]:
                del responses[status]  # FastAPI's 422 is rebuilt below, as a problem
            responses.update(_error_responses(path, [*_common_kinds(path, operation), *declared]))
            # The page model's schema, merged into the operation from the route's openapi_extra.
            page = operation.pop(PAGE_MODEL_KEY, None)
            if page is not None:
                page_schema = dict(page["schema"])
                for name, component in page_schema.pop("$defs", {}).items():
                    schemas.setdefault(name, component)
                schemas[page["name"]] = page_schema
                content = operation["responses"]["200"].setdefault("content", {})
                content[PAGE_MEDIA_TYPE] = {"schema": {"$ref": f"#/components/schemas/{page['name']}"}}
    return doc


def install(app: FastAPI) -> None:
    """Serve the finished document at `app.openapi_url` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                ),
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
