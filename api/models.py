"""Request and response bodies of the REST surface.

The shapes named in the REST spec are kept field for field; FleetPulse's additions are optional on
input. Inputs are bounded (lengths, ranges), so bad input is a 422 before any query runs.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from schemas.bounds import STORABLE, UtcDatetime, storable_text

# --- the shared input types: every REST input is one of these, or bounded where declared ---------

# Times a request may carry: aware, and within these years, so no arithmetic on them overflows
# (`end - 1 hour` at 0001-01-01, `9999-12-31T23:59:59-01:00` in UTC) and each is a 422 that says so.
API_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
API_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _api_range(value: datetime) -> datetime:
    if not API_EARLIEST <= value < API_LATEST:
        raise PydanticCustomError(
            "time_out_of_range",
            "time must be from {earliest} to before {latest}",
            {"earliest": API_EARLIEST.isoformat(), "latest": API_LATEST.isoformat()},
        )
    return value


ApiTime = Annotated[UtcDatetime, AfterValidator(_api_range)]
"""A time in a request body or query: with a UTC offset, from 1970 to before 2200."""

METADATA_DEPTH = 8
METADATA_ITEMS = 1000


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """Free-form JSON the database can store as it came: finite numbers, text without NUL or
    lone surrogates (keys too), bounded nesting and size."""
    count = 0

    def check(node: Any, depth: int) -> None:
        nonlocal count
        count += 1
        if depth > METADATA_DEPTH or count > METADATA_ITEMS:
            raise PydanticCustomError(
                "metadata_too_large",
                "metadata holds at most {items} values, nested at most {depth} deep",
                {"items": METADATA_ITEMS, "depth": METADATA_DEPTH},
            )
        if isinstance(node, float) and not math.isfinite(node):
            raise PydanticCustomError("finite_number", "metadata numbers must be finite")
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= 2**63:
            raise PydanticCustomError("int_too_large", "metadata integers must fit 64 bits")
        if isinstance(node, str):
            storable_text(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                storable_text(key)
                check(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                check(item, depth + 1)

    check(value, 0)
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_storable_json)]
"""A server's free-form JSON metadata."""


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), STORABLE]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    STORABLE,
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256), STORABLE]
ShareRole = Literal["viewer", "operator", "owner"]
ServerStatus = Literal["online", "offline", "stale", "unknown"]
# A server's tag: a short label without spaces or commas ("prod", "eu-west", "team:db").
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\s,]+$"), STORABLE
]
MAX_TAGS = 32


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T] = Field(description="this page's items, in the list's order")
    next_cursor: str | None = Field(
        description="pass it back as `cursor` for the next page; null when this page is the last",
        examples=["WyJzZXJ2ZXJzIiwiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsIjNmMGMiXQ.c2lnbmF0dXJl"],
    )


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- accounts ------------------------------------------------------------------------------------


class UserOut(BaseModel):
    """A user account."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "8a1e5c77-2b4d-4e0f-b3a9-6c2d1f0e9b84",
                    "email": "ada@example.com",
                    "username": "ada",
                    "full_name": "Ada Lovelace",
                    "is_active": True,
                    "created_at": "2026-01-01T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    """the user's id"""
    email: str
    """the e-mail address, unique (case-insensitive); logging in uses it"""
    username: str
    """the user name, unique (case-insensitive)"""
    full_name: str | None
    """the name to show, if given"""
    is_active: bool
    """false: the account may not log in"""
    created_at: datetime
    """when the account was registered"""


class RegisterIn(_In):
    email: Email
    username: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[\w.@+-]+$"),
        STORABLE,
    ]
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), STORABLE] | None = (
        None
    )
    password: Password
    password_confirm: Password

    @model_validator(mode="after")
    def _confirm(self) -> RegisterIn:
        if self.password != self.password_confirm:
            raise ValueError("password and password_confirm differ")
        return self


class LoginIn(_In):
    email: Annotated[str, StringConstraints(max_length=320), STORABLE]
    password: Annotated[str, StringConstraints(max_length=256), STORABLE]


class RefreshIn(_In):
    refresh_token: Annotated[str, StringConstraints(max_length=4096), STORABLE]


class PasswordChangeIn(_In):
    current_password: Annotated[str, StringConstraints(max_length=256), STORABLE]
    new_password: Password


class Token(BaseModel):
    """A login's answer: an access token for `Authorization: Bearer`, and a refresh token."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiJ9.e30.sig",
                    "refresh_token": "eyJhbGciOiJIUzI1NiJ9.e30.sig2",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "user": {
                        "id": "8a1e5c77-2b4d-4e0f-b3a9-6c2d1f0e9b84",
                        "email": "ada@example.com",
                        "username": "ada",
                        "full_name": None,
                        "is_active": True,
                        "created_at": "2026-01-01T12:00:00Z",
                    },
                }
            ]
        },
    )

    access_token: str
    """an HS256 JWT for `Authorization: Bearer`, valid `expires_in` seconds"""
    refresh_token: str
    """exchanged once for a new Token at `POST /auth/refresh` (they rotate)"""
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    """always `bearer`"""
    expires_in: int
    """seconds until the access token expires"""
    user: UserOut
    """the user the tokens are for"""


# --- servers and sharing -------------------------------------------------------------------------


def _unique_tags(tags: list[str] | None) -> list[str] | None:
    """Tags in their given order, each once."""
    return None if tags is None else list(dict.fromkeys(tags))


class ServerIn(_In):
    name: Text
    host: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), STORABLE] | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    metadata: Metadata = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)

    @model_validator(mode="after")
    def _dedupe(self) -> ServerIn:
        self.tags = _unique_tags(self.tags) or []
        return self


class ServerUpdate(_In):
    name: Text | None = None
    host: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), STORABLE] | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    metadata: Metadata | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)  # replaces the list; [] clears

    @model_validator(mode="after")
    def _dedupe(self) -> ServerUpdate:
        self.tags = _unique_tags(self.tags)
        return self


class ServerOut(BaseModel):
    """A monitored server, as the caller sees it."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
                    "name": "web-1",
                    "host": "10.0.0.12",
                    "port": 22,
                    "metadata": {"rack": "b2"},
                    "tags": ["prod", "eu"],
                    "status": "online",
                    "last_seen": "2026-01-01T12:00:00Z",
                    "created_at": "2026-01-01T12:00:00Z",
                    "updated_at": "2026-01-01T12:00:00Z",
                    "role": "owner",
                    "commands_enabled": False,
                    "command_allowlist": [],
                }
            ]
        },
    )

    id: uuid.UUID
    """the server's id"""
    name: str
    """the name given to it"""
    host: str | None
    """its address, informational"""
    port: int | None
    """a port, informational"""
    metadata: dict[str, Any]
    """any JSON object its owner attached"""
    tags: list[str]
    """labels to filter by (`GET /servers?tag=`, `GET /fleet?tag=`)"""
    status: ServerStatus
    """online while its agent reports, offline or stale after, unknown before the first report"""
    last_seen: datetime | None
    """the last time its agent was heard; null if never"""
    created_at: datetime
    """when it was added"""
    updated_at: datetime
    """when it was last changed"""
    role: Literal["owner", "operator", "viewer"]
    """the caller's role on this server"""
    commands_enabled: bool
    """whether remote commands may run on it (off until an owner turns them on)"""
    command_allowlist: list[str]
    """patterns a command must match in full (empty: any command, once enabled)"""


class CommandSettingsIn(_In):
    commands_enabled: bool
    command_allowlist: list[Annotated[str, StringConstraints(min_length=1, max_length=500), STORABLE]] = (
        Field(default_factory=list, max_length=100)
    )


class ShareIn(_In):
    email: Annotated[str, StringConstraints(max_length=320), STORABLE]
    role: ShareRole


class ShareOut(BaseModel):
    """A server shared with a user, and as what."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "server_id": "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
                    "user_id": "8a1e5c77-2b4d-4e0f-b3a9-6c2d1f0e9b84",
                    "email": "ada@example.com",
                    "username": "ada",
                    "role": "viewer",
                    "created_at": "2026-01-01T12:00:00Z",
                }
            ]
        },
    )

    server_id: uuid.UUID
    """the shared server"""
    user_id: uuid.UUID
    """the user it is shared with"""
    email: str
    """that user's e-mail address"""
    username: str
    """that user's name"""
    role: ShareRole
    """what the user may do: owner (everything), operator (also commands and alerts), viewer (read)"""
    created_at: datetime
    """when it was shared"""


class ServerPage(Page[ServerOut]):
    """A page of servers."""


class SharePage(Page[ShareOut]):
    """A page of a server's shares."""


# --- the fleet summary ----------------------------------------------------------------------------


class SparkOut(BaseModel):
    """1-minute averages from `start`, one point per `step_seconds`; null where a minute had no data."""

    start: datetime
    step_seconds: int
    cpu_percent: list[float | None]
    memory_percent: list[float | None]


class FleetAlertsOut(BaseModel):
    firing: int
    max_severity: Literal["info", "warning", "critical"] | None


class FleetServerOut(BaseModel):
    server_id: uuid.UUID
    name: str
    tags: list[str]
    role: ShareRole
    status: ServerStatus
    last_seen: datetime | None
    # The newest stored sample (all null when the server never sent one).
    sample_time: datetime | None
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None  # the fullest disk of that sample
    disk_mount: str | None
    spark: SparkOut
    alerts: FleetAlertsOut


class FleetOut(BaseModel):
    generated_at: datetime
    servers: list[FleetServerOut]
    truncated: bool  # more servers matched than `fleet_max_servers`: the first ones by name are here


# --- notification channels ------------------------------------------------------------------------


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host, no whitespace: where alerts are POSTed."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL must name a host")
    if any(c.isspace() for c in value):
        raise ValueError("the URL must not contain whitespace")
    try:
        parts.port  # noqa: B018 - validates the port (raises ValueError when out of range)
    except ValueError as exc:
        raise ValueError(f"invalid port: {exc}") from exc
    return value


ChannelUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=8, max_length=2048),
    STORABLE,
    AfterValidator(_http_url),
]
ChannelSecret = Annotated[str, StringConstraints(min_length=1, max_length=512), STORABLE]
ChannelKind = Literal["webhook", "slack"]


class ChannelIn(_In):
    name: Text
    kind: ChannelKind
    url: ChannelUrl
    secret: ChannelSecret | None = None  # write-only: never answered, only `has_secret`
    server_id: uuid.UUID | None = None  # None: every server of the owner
    rule_id: uuid.UUID | None = None  # None: every rule
    enabled: bool = True


class ChannelUpdate(_In):
    """Fields left out stay as they are; `secret`, `server_id` and `rule_id` may be set to null
    (no signing, every server, every rule)."""

    name: Text | None = None
    kind: ChannelKind | None = None
    url: ChannelUrl | None = None
    secret: ChannelSecret | None = None
    server_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    enabled: bool | None = None


class ChannelOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: ChannelKind
    url: str
    has_secret: bool
    server_id: uuid.UUID | None
    rule_id: uuid.UUID | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChannelPage(Page[ChannelOut]):
    """A page of notification channels."""


class ChannelTestOut(BaseModel):
    delivered: bool
    status_code: int | None  # the receiver's HTTP status, null when none answered
    error: str | None


# --- API keys ------------------------------------------------------------------------------------


class ApiKeyIn(_In):
    server_id: uuid.UUID
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), STORABLE] | None = None
    expires_at: ApiTime | None = None


class ApiKeyOut(BaseModel):
    """An agent's API key, without its secret."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "c51b7a02-9d3e-4f61-8a45-27e0b6d9f3c1",
                    "server_id": "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
                    "name": "web-1 agent",
                    "is_active": True,
                    "last_used": "2026-01-01T12:00:00Z",
                    "expires_at": None,
                    "created_at": "2026-01-01T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    """the key's id"""
    server_id: uuid.UUID
    """the server whose agent uses it"""
    name: str | None
    """a label"""
    is_active: bool
    """false once deactivated or past `expires_at`: the agent is refused"""
    last_used: datetime | None
    """the last time an agent connected with it"""
    expires_at: datetime | None
    """when it stops working; null: never"""
    created_at: datetime
    """when it was made"""


class ApiKeyPage(Page[ApiKeyOut]):
    """A page of a server's API keys."""


class ApiKeyCreated(ApiKeyOut):
    """A new API key, with its secret: shown this once, never again."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "c51b7a02-9d3e-4f61-8a45-27e0b6d9f3c1",
                    "server_id": "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
                    "name": "web-1 agent",
                    "is_active": True,
                    "last_used": None,
                    "expires_at": None,
                    "created_at": "2026-01-01T12:00:00Z",
                    "key": "fpk_3kq9x.Zr8pW2mNvT4yHc6dLs0aQe1uBj5oGf7i",
                    "install_command": "curl -fsSL https://fleet.example.com/install.sh"
                    " | sudo sh -s -- --key fpk_3kq9x...",
                }
            ]
        },
    )

    key: str
    """the plaintext key (`fpk_...`): returned here once, never again"""
    install_command: str
    """the one-line agent install with this key (docs/agent-install.md); shown once, like the key"""


class ApiKeyMe(BaseModel):
    """What an agent's key is: its server."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "server_id": "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
                    "key_id": "c51b7a02-9d3e-4f61-8a45-27e0b6d9f3c1",
                    "name": "web-1 agent",
                    "is_active": True,
                }
            ]
        },
    )

    server_id: uuid.UUID
    """the server the key belongs to"""
    key_id: uuid.UUID
    """the key's id"""
    name: str | None
    """the key's label"""
    is_active: bool
    """always true here (an inactive key is a 401)"""


# --- commands ------------------------------------------------------------------------------------


class CommandIn(_In):
    command: Annotated[str, StringConstraints(min_length=1, max_length=65536), STORABLE]
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)


class CommandOut(BaseModel):
    command_id: uuid.UUID
    success: bool
    output: str | None
    error: str | None
    exit_code: int | None
    duration_ms: int | None


class DockerActionOut(BaseModel):
    command_id: uuid.UUID
    status: Literal["success", "error"]
    message: str | None


class ProcessOut(BaseModel):
    pid: int
    name: str
    user: str | None = None
    status: str | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None  # of the host's memory, when the agent reports it
    memory_rss_bytes: int | None = None  # resident set size, when the agent reports it


class ProcessesOut(BaseModel):
    timestamp: datetime | None  # the sample the list comes from; null: none ever sent
    processes: list[ProcessOut]


class ContainerOut(BaseModel):
    id: str
    name: str
    image: str | None
    state: str | None
    status: str | None
    cpu_percent: float | None
    memory_bytes: int | None


class ContainersOut(BaseModel):
    server_id: uuid.UUID
    time: datetime  # the sample the list comes from
    containers: list[ContainerOut]


class DockerLogsOut(BaseModel):
    command_id: uuid.UUID
    container_id: str
    logs: list[str]


class CommandHistoryOut(BaseModel):
    command_id: uuid.UUID
    server_id: uuid.UUID
    requested_by: uuid.UUID | None
    action: str
    command: str | None
    container_id: str | None
    requested_at: datetime
    success: bool | None
    exit_code: int | None
    duration_ms: int | None
    output: str | None
    error: str | None
    finished_at: datetime | None


class CommandHistoryPage(Page[CommandHistoryOut]):
    """A page of a server's command history."""


# --- audit ---------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    time: datetime
    user_id: uuid.UUID | None
    server_id: uuid.UUID | None
    method: str
    path: str
    action: str
    status: int
    client: str | None
    detail: dict[str, Any]


class AuditPage(Page[AuditOut]):
    """A page of audit rows."""
