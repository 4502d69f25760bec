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

from schemas.bounds import INT4_MAX, INT4_MIN, NAME, OUTPUT, STORABLE, UtcDatetime, storable_text

from .passwords import is_common

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


TEXT_MAX = 200  # a name or label
EMAIL_MAX = 320  # RFC 3696's longest address
PASSWORD_MIN = 8
PASSWORD_MAX = 256
TOKEN_MAX = 4096
HOST_MAX = 255  # a DNS name's longest

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TEXT_MAX), STORABLE]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    STORABLE,
]


def _not_common(value: str) -> str:
    if is_common(value):
        raise PydanticCustomError(
            "common_password", "this password is one of the most commonly used ones: choose another"
        )
    return value


# A new password (registration, change): 8 to 256 characters, and not a common one.
Password = Annotated[
    str,
    StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX),
    STORABLE,
    AfterValidator(_not_common),
]
ShareRole = Literal["viewer", "operator", "owner"]
ServerStatus = Literal["online", "offline", "stale", "unknown"]
# A server's tag: a short label without spaces or commas ("prod", "eu-west", "team:db").
TAG_MAX = 64
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX, pattern=r"^[^\s,]+$"),
    STORABLE,
]
MAX_TAGS = 32

# Values the field examples share, so the examples of one answer agree with each other.
EXAMPLE_SERVER = "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65"
EXAMPLE_USER = "8a1e5c77-2b4d-4e0f-b3a9-6c2d1f0e9b84"
EXAMPLE_KEY = "c51b7a02-9d3e-4f61-8a45-27e0b6d9f3c1"
EXAMPLE_RULE = "5b6c7d8e-1f2a-4b3c-8d4e-9f0a1b2c3d4e"
EXAMPLE_EPISODE = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
EXAMPLE_COMMAND = "0d1c2b3a-4f5e-4d6c-9b7a-8f9e0d1c2b3a"
EXAMPLE_CHANNEL = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
EXAMPLE_TIME = "2026-01-01T12:00:00Z"
EXAMPLE_EMAIL = "ada@example.com"
EXAMPLE_PASSWORD = "correct horse battery"  # noqa: S105 - an example in the documentation


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T] = Field(description="this page's items, in the list's order (at most `limit`)")
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

    id: uuid.UUID = Field(examples=[EXAMPLE_USER])
    """the user's id"""
    email: str = Field(examples=[EXAMPLE_EMAIL])
    """the e-mail address, unique (case-insensitive); logging in uses it"""
    username: str = Field(examples=["ada"])
    """the user name, unique (case-insensitive)"""
    full_name: str | None = Field(examples=["Ada Lovelace", None])
    """the name to show; null when none was given"""
    is_active: bool = Field(examples=[True])
    """false: the account may not log in"""
    created_at: datetime = Field(examples=[EXAMPLE_TIME])
    """when the account was registered (UTC)"""


class RegisterIn(_In):
    """A new account; the answer logs it in."""

    email: Email = Field(
        description=f"the e-mail address to log in with, at most {EMAIL_MAX} characters, unique "
        "(case-insensitive)",
        examples=[EXAMPLE_EMAIL],
    )
    username: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[\w.@+-]+$"),
        STORABLE,
    ] = Field(
        description="a user name, unique (case-insensitive): letters, digits and `.@+-_`",
        examples=["ada"],
    )
    full_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=TEXT_MAX), STORABLE] | None
    ) = Field(
        default=None,
        description=f"the name to show, at most {TEXT_MAX} characters; null or left out: none",
        examples=["Ada Lovelace"],
    )
    password: Password = Field(
        description=f"{PASSWORD_MIN} to {PASSWORD_MAX} characters; stored as a hash only",
        examples=[EXAMPLE_PASSWORD],
    )
    password_confirm: Password = Field(
        description="the password again; a 422 when the two differ", examples=[EXAMPLE_PASSWORD]
    )

    @model_validator(mode="after")
    def _confirm(self) -> RegisterIn:
        if self.password != self.password_confirm:
            raise ValueError("password and password_confirm differ")
        return self


class LoginIn(_In):
    """A login with e-mail and password (the JSON form of `POST /auth/login`)."""

    email: Annotated[str, StringConstraints(max_length=EMAIL_MAX), STORABLE] = Field(
        description="the account's e-mail address (case-insensitive)", examples=[EXAMPLE_EMAIL]
    )
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX), STORABLE] = Field(
        description="the account's password", examples=[EXAMPLE_PASSWORD]
    )


class RefreshIn(_In):
    """A refresh token to exchange (or, at logout, to revoke)."""

    refresh_token: Annotated[str, StringConstraints(max_length=TOKEN_MAX), STORABLE] = Field(
        description="the `refresh_token` of the last Token answer; usable once (they rotate)",
        examples=["eyJhbGciOiJIUzI1NiJ9.e30.sig2"],
    )


class PasswordChangeIn(_In):
    """A password change: every refresh token of the account is revoked."""

    current_password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX), STORABLE] = Field(
        description="the password in use now", examples=[EXAMPLE_PASSWORD]
    )
    new_password: Password = Field(
        description=f"the new password, {PASSWORD_MIN} to {PASSWORD_MAX} characters",
        examples=["a longer passphrase, 2026"],
    )


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

    access_token: str = Field(examples=["eyJhbGciOiJIUzI1NiJ9.e30.sig"])
    """an HS256 JWT for `Authorization: Bearer`, valid `expires_in` seconds"""
    refresh_token: str = Field(examples=["eyJhbGciOiJIUzI1NiJ9.e30.sig2"])
    """exchanged once for a new Token at `POST /auth/refresh` (they rotate)"""
    token_type: Literal["bearer"] = Field(default="bearer", examples=["bearer"])
    """always `bearer`"""
    expires_in: int = Field(examples=[900])
    """seconds until the access token expires (the API's `access_token_minutes` setting)"""
    user: UserOut
    """the user the tokens are for"""


# --- servers and sharing -------------------------------------------------------------------------


def _unique_tags(tags: list[str] | None) -> list[str] | None:
    """Tags in their given order, each once."""
    return None if tags is None else list(dict.fromkeys(tags))


Host = Annotated[str, StringConstraints(strip_whitespace=True, max_length=HOST_MAX), STORABLE]

_SERVER_NAME = f"the server's name, 1 to {TEXT_MAX} characters"
_HOST = (
    f"its address (a host name or an IP, at most {HOST_MAX} characters), informational only: the agent "
    "connects out"
)
_PORT = "a port, informational (1 to 65535)"
_METADATA = f"any JSON object, at most {METADATA_ITEMS} values nested at most {METADATA_DEPTH} deep"
_TAGS = (
    f"labels to filter by, at most {MAX_TAGS} of at most {TAG_MAX} characters each, no spaces or commas; "
    "kept once each, in order"
)


class ServerIn(_In):
    """A server to add; its agent then needs an API key (`POST /api-keys`)."""

    name: Text = Field(description=_SERVER_NAME, examples=["web-1"])
    host: Host | None = Field(default=None, description=f"{_HOST}; null: none", examples=["10.0.0.12"])
    port: int | None = Field(default=None, ge=1, le=65535, description=f"{_PORT}; null: none", examples=[22])
    metadata: Metadata = Field(default_factory=dict, description=_METADATA, examples=[{"rack": "b2"}])
    tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description=_TAGS, examples=[["prod", "eu"]]
    )

    @model_validator(mode="after")
    def _dedupe(self) -> ServerIn:
        self.tags = _unique_tags(self.tags) or []
        return self


class ServerUpdate(_In):
    """The fields to change; a field left out or null stays as it is."""

    name: Text | None = Field(default=None, description=_SERVER_NAME, examples=["web-1"])
    host: Host | None = Field(default=None, description=_HOST, examples=["10.0.0.12"])
    port: int | None = Field(default=None, ge=1, le=65535, description=_PORT, examples=[22])
    metadata: Metadata | None = Field(
        default=None, description=f"replaces the metadata: {_METADATA}", examples=[{"rack": "b3"}]
    )
    tags: list[Tag] | None = Field(
        default=None,
        max_length=MAX_TAGS,
        description=f"replaces the list ([] clears it): {_TAGS}",
        examples=[["prod"]],
    )

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

    id: uuid.UUID = Field(examples=[EXAMPLE_SERVER])
    """the server's id"""
    name: str = Field(examples=["web-1"])
    """the name given to it"""
    host: str | None = Field(examples=["10.0.0.12", None])
    """its address, informational; null: none given"""
    port: int | None = Field(examples=[22, None])
    """a port, informational; null: none given"""
    metadata: dict[str, Any] = Field(examples=[{"rack": "b2"}])
    """any JSON object its owner attached ({} when none)"""
    tags: list[str] = Field(examples=[["prod", "eu"]])
    """labels to filter by (`GET /servers?tag=`, `GET /fleet?tag=`)"""
    status: ServerStatus = Field(examples=["online"])
    """online while its agent reports, offline or stale after, unknown before the first report"""
    last_seen: datetime | None = Field(examples=[EXAMPLE_TIME, None])
    """the last time its agent was heard (UTC); null if never"""
    created_at: datetime = Field(examples=[EXAMPLE_TIME])
    """when it was added (UTC)"""
    updated_at: datetime = Field(examples=[EXAMPLE_TIME])
    """when it was last changed (UTC)"""
    role: Literal["owner", "operator", "viewer"] = Field(examples=["owner"])
    """the caller's role on this server"""
    commands_enabled: bool = Field(examples=[False])
    """whether remote commands may run on it (off until an owner turns them on)"""
    command_allowlist: list[str] = Field(examples=[["uptime", "systemctl status .*"]])
    """patterns a command must match in full (empty: any command, once enabled)"""


ALLOWLIST_MAX = 100
PATTERN_MAX = 500


class CommandSettingsIn(_In):
    """The remote-command switch of a server (owner only; audited)."""

    commands_enabled: bool = Field(
        description="true: the server's operators and owners may run commands on it", examples=[True]
    )
    command_allowlist: list[
        Annotated[str, StringConstraints(min_length=1, max_length=PATTERN_MAX), STORABLE]
    ] = Field(
        default_factory=list,
        max_length=ALLOWLIST_MAX,
        description=f"regular expressions a command must match in full, at most {ALLOWLIST_MAX} of at "
        f"most {PATTERN_MAX} characters; empty or left out: any command",
        examples=[["uptime", "systemctl status .*"]],
    )


class ShareIn(_In):
    """Share a server with another user (owner only)."""

    email: Annotated[str, StringConstraints(max_length=EMAIL_MAX), STORABLE] = Field(
        description="the e-mail address of a registered user (case-insensitive)",
        examples=["grace@example.com"],
    )
    role: ShareRole = Field(
        description="what they may do: viewer (read), operator (also commands and alerts), owner "
        "(everything)",
        examples=["viewer"],
    )


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

    server_id: uuid.UUID = Field(examples=[EXAMPLE_SERVER])
    """the shared server"""
    user_id: uuid.UUID = Field(examples=[EXAMPLE_USER])
    """the user it is shared with"""
    email: str = Field(examples=[EXAMPLE_EMAIL])
    """that user's e-mail address"""
    username: str = Field(examples=["ada"])
    """that user's name"""
    role: ShareRole = Field(examples=["viewer"])
    """what the user may do: owner (everything), operator (also commands and alerts), viewer (read)"""
    created_at: datetime = Field(examples=[EXAMPLE_TIME])
    """when it was shared (UTC)"""


class ServerPage(Page[ServerOut]):
    """A page of servers."""


class SharePage(Page[ShareOut]):
    """A page of a server's shares."""


# --- the fleet summary ----------------------------------------------------------------------------


class SparkOut(BaseModel):
    """1-minute averages from `start`, one point per `step_seconds`; null where a minute had no data."""

    start: datetime = Field(description="the first point's minute (UTC)", examples=["2026-01-01T11:45:00Z"])
    step_seconds: int = Field(description="seconds between two points (60)", examples=[60])
    cpu_percent: list[float | None] = Field(
        description="CPU use in percent (0 to 100), one per step, oldest first; null: no sample that minute",
        examples=[[12.5, 14.0, None, 13.2]],
    )
    memory_percent: list[float | None] = Field(
        description="memory use in percent (0 to 100), one per step, oldest first; null: no sample that "
        "minute",
        examples=[[41.0, 41.2, None, 41.5]],
    )


class FleetAlertsOut(BaseModel):
    """The server's firing alerts."""

    firing: int = Field(description="how many of its alert episodes are firing now", examples=[1])
    max_severity: Literal["info", "warning", "critical"] | None = Field(
        description="the highest severity among them; null when none fires", examples=["critical", None]
    )


class FleetServerOut(BaseModel):
    """One server of the fleet page, with its newest figures."""

    server_id: uuid.UUID = Field(description="the server's id", examples=[EXAMPLE_SERVER])
    name: str = Field(description="its name", examples=["web-1"])
    tags: list[str] = Field(description="its labels", examples=[["prod", "eu"]])
    role: ShareRole = Field(description="the caller's role on it", examples=["owner"])
    status: ServerStatus = Field(
        description="online while its agent reports, offline or stale after, unknown before the first report",
        examples=["online"],
    )
    last_seen: datetime | None = Field(
        description="the last time its agent was heard (UTC); null if never", examples=[EXAMPLE_TIME]
    )
    sample_time: datetime | None = Field(
        description="the time of its newest stored sample (UTC); this and the figures below are null "
        "when it never sent one",
        examples=[EXAMPLE_TIME],
    )
    cpu_percent: float | None = Field(
        description="CPU use of that sample, percent (0 to 100)", examples=[12.5]
    )
    memory_percent: float | None = Field(
        description="memory use of that sample, percent (0 to 100)", examples=[41.5]
    )
    disk_percent: float | None = Field(
        description="how full the fullest disk of that sample is, percent (0 to 100)", examples=[73.0]
    )
    disk_mount: str | None = Field(description="that disk's mount point", examples=["/var"])
    spark: SparkOut = Field(description="the last minutes of CPU and memory, for the row's sparkline")
    alerts: FleetAlertsOut = Field(description="its firing alerts")


class FleetOut(BaseModel):
    """Every server the caller sees (filtered by `tag`), by name, with its newest figures."""

    generated_at: datetime = Field(description="when the summary was read (UTC)", examples=[EXAMPLE_TIME])
    servers: list[FleetServerOut] = Field(description="the servers, by name")
    truncated: bool = Field(
        description="true: more servers matched than the API's `fleet_max_servers` setting; the first "
        "ones by name are here",
        examples=[False],
    )


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


CHANNEL_URL_MIN = 8
CHANNEL_URL_MAX = 2048
CHANNEL_SECRET_MAX = 512
ChannelUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=CHANNEL_URL_MIN, max_length=CHANNEL_URL_MAX),
    STORABLE,
    AfterValidator(_http_url),
]
ChannelSecret = Annotated[str, StringConstraints(min_length=1, max_length=CHANNEL_SECRET_MAX), STORABLE]
ChannelKind = Literal["webhook", "slack"]


_CHANNEL_NAME = f"a name for the channel, 1 to {TEXT_MAX} characters"
_CHANNEL_KIND = "webhook: a signed JSON POST; slack: a Slack incoming-webhook message"
_CHANNEL_URL = (
    "where alerts are POSTed: an absolute http(s) URL with a host, "
    f"{CHANNEL_URL_MIN} to {CHANNEL_URL_MAX} characters"
)
_CHANNEL_SECRET = (
    f"signs each webhook body (HMAC-SHA256, 1 to {CHANNEL_SECRET_MAX} characters); write-only: answers "
    "show only `has_secret`"
)
_CHANNEL_SERVER = "only alerts of this server; null: every server of the owner"
_CHANNEL_RULE = "only alerts of this rule; null: every rule"


class ChannelIn(_In):
    """A notification channel: where the owner's alerts are sent."""

    name: Text = Field(description=_CHANNEL_NAME, examples=["on-call webhook"])
    kind: ChannelKind = Field(description=_CHANNEL_KIND, examples=["webhook"])
    url: ChannelUrl = Field(description=_CHANNEL_URL, examples=["https://hooks.example.com/fleetpulse"])
    secret: ChannelSecret | None = Field(
        default=None,
        description=f"{_CHANNEL_SECRET}; null or left out: unsigned",
        examples=["s3cr3t-signing-key"],
    )
    server_id: uuid.UUID | None = Field(default=None, description=_CHANNEL_SERVER, examples=[EXAMPLE_SERVER])
    rule_id: uuid.UUID | None = Field(default=None, description=_CHANNEL_RULE, examples=[None])
    enabled: bool = Field(default=True, description="false: nothing is sent to it", examples=[True])


class ChannelUpdate(_In):
    """Fields left out stay as they are; `secret`, `server_id` and `rule_id` may be set to null
    (no signing, every server, every rule)."""

    name: Text | None = Field(default=None, description=_CHANNEL_NAME, examples=["on-call webhook"])
    kind: ChannelKind | None = Field(default=None, description=_CHANNEL_KIND, examples=["slack"])
    url: ChannelUrl | None = Field(
        default=None, description=_CHANNEL_URL, examples=["https://hooks.slack.com/services/T000/B000/XXXX"]
    )
    secret: ChannelSecret | None = Field(
        default=None, description=f"{_CHANNEL_SECRET}; null: unsigned from now on", examples=[None]
    )
    server_id: uuid.UUID | None = Field(default=None, description=_CHANNEL_SERVER, examples=[None])
    rule_id: uuid.UUID | None = Field(default=None, description=_CHANNEL_RULE, examples=[EXAMPLE_RULE])
    enabled: bool | None = Field(default=None, description="false: nothing is sent to it", examples=[False])


class ChannelOut(BaseModel):
    """A notification channel, without its secret."""

    id: uuid.UUID = Field(description="the channel's id", examples=[EXAMPLE_CHANNEL])
    name: str = Field(description="its name", examples=["on-call webhook"])
    kind: ChannelKind = Field(description=_CHANNEL_KIND, examples=["webhook"])
    url: str = Field(description="where alerts are POSTed", examples=["https://hooks.example.com/fleetpulse"])
    has_secret: bool = Field(
        description="whether bodies are signed (the secret is never answered)", examples=[True]
    )
    server_id: uuid.UUID | None = Field(description=_CHANNEL_SERVER, examples=[EXAMPLE_SERVER])
    rule_id: uuid.UUID | None = Field(description=_CHANNEL_RULE, examples=[None])
    enabled: bool = Field(description="false: nothing is sent to it", examples=[True])
    created_at: datetime = Field(description="when it was made (UTC)", examples=[EXAMPLE_TIME])
    updated_at: datetime = Field(description="when it was last changed (UTC)", examples=[EXAMPLE_TIME])


class ChannelPage(Page[ChannelOut]):
    """A page of notification channels."""


class ChannelTestOut(BaseModel):
    """The outcome of one test message sent to the channel."""

    delivered: bool = Field(description="true: the receiver answered 2xx", examples=[True])
    status_code: int | None = Field(
        description="the receiver's HTTP status; null when none answered (refused, timed out)", examples=[200]
    )
    error: str | None = Field(description="why it was not delivered; null when it was", examples=[None])


# --- API keys ------------------------------------------------------------------------------------


class ApiKeyIn(_In):
    """A new API key for a server's agent (owner only)."""

    server_id: uuid.UUID = Field(description="the server whose agent will use it", examples=[EXAMPLE_SERVER])
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=TEXT_MAX), STORABLE] | None = (
        Field(
            default=None,
            description=f"a label, at most {TEXT_MAX} characters; null: none",
            examples=["web-1 agent"],
        )
    )
    expires_at: ApiTime | None = Field(
        default=None,
        description="when it stops working, with a UTC offset, from 1970 to before 2200; null: never",
        examples=["2027-01-01T00:00:00Z"],
    )


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

    id: uuid.UUID = Field(examples=[EXAMPLE_KEY])
    """the key's id"""
    server_id: uuid.UUID = Field(examples=[EXAMPLE_SERVER])
    """the server whose agent uses it"""
    name: str | None = Field(examples=["web-1 agent", None])
    """a label; null: none"""
    is_active: bool = Field(examples=[True])
    """false once deactivated or past `expires_at`: the agent is refused"""
    last_used: datetime | None = Field(examples=[EXAMPLE_TIME, None])
    """the last time an agent connected with it (UTC); null: never"""
    expires_at: datetime | None = Field(examples=[None, "2027-01-01T00:00:00Z"])
    """when it stops working (UTC); null: never"""
    created_at: datetime = Field(examples=[EXAMPLE_TIME])
    """when it was made (UTC)"""


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

    key: str = Field(examples=["fpk_3kq9x.Zr8pW2mNvT4yHc6dLs0aQe1uBj5oGf7i"])
    """the plaintext key (`fpk_...`): returned here once, never again (only its hash is stored)"""
    install_command: str = Field(
        examples=["curl -fsSL https://fleet.example.com/install.sh | sudo sh -s -- --key fpk_3kq9x..."]
    )
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

    server_id: uuid.UUID = Field(examples=[EXAMPLE_SERVER])
    """the server the key belongs to"""
    key_id: uuid.UUID = Field(examples=[EXAMPLE_KEY])
    """the key's id"""
    name: str | None = Field(examples=["web-1 agent"])
    """the key's label; null: none"""
    is_active: bool = Field(examples=[True])
    """always true here (an inactive key is a 401)"""


# --- commands ------------------------------------------------------------------------------------


COMMAND_MAX = 65536
COMMAND_TIMEOUT_MAX = 3600.0

_COMMAND_ID = "the command's id (its row in the command history)"
_EXIT_CODE = f"the process's exit code ({INT4_MIN} to {INT4_MAX}); null when it did not run or did not end"
_DURATION = "how long it ran, in milliseconds; null when it did not run"
_OUTPUT = f"its standard output, at most {OUTPUT} characters; null when none came back"


class CommandIn(_In):
    """A command to run on the server's agent (commands enabled, allowlisted, operator or owner)."""

    command: Annotated[str, StringConstraints(min_length=1, max_length=COMMAND_MAX), STORABLE] = Field(
        description=f"the command line, 1 to {COMMAND_MAX} characters: words and quotes, no shell "
        "operators (the grammar is in docs/api.md); matched against the server's allowlist",
        examples=["systemctl status nginx"],
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=COMMAND_TIMEOUT_MAX,
        description=f"seconds to wait for its result, at most {COMMAND_TIMEOUT_MAX:g}; null: the API's "
        "`command_timeout_seconds` setting",
        examples=[30],
    )


class CommandOut(BaseModel):
    """A command's result, as the agent reported it."""

    command_id: uuid.UUID = Field(description=_COMMAND_ID, examples=[EXAMPLE_COMMAND])
    success: bool = Field(description="true: it ran and exited 0", examples=[True])
    output: str | None = Field(description=_OUTPUT, examples=["nginx.service - active (running)"])
    error: str | None = Field(
        description="why it failed (its standard error, or the agent's reason); null on success",
        examples=[None],
    )
    exit_code: int | None = Field(description=_EXIT_CODE, examples=[0])
    duration_ms: int | None = Field(description=_DURATION, examples=[42])


class DockerActionOut(BaseModel):
    """The outcome of a container start, stop or restart."""

    command_id: uuid.UUID = Field(description=_COMMAND_ID, examples=[EXAMPLE_COMMAND])
    status: Literal["success", "error"] = Field(description="whether Docker did it", examples=["success"])
    message: str | None = Field(
        description="Docker's or the agent's message (the reason of an error); null when none",
        examples=[None],
    )


class ProcessOut(BaseModel):
    """One process of the newest process sample."""

    pid: int = Field(description="its process id", examples=[1234])
    name: str = Field(description=f"its name, at most {NAME} characters", examples=["nginx"])
    user: str | None = Field(
        default=None, description="the user it runs as; null: not reported", examples=["www-data"]
    )
    status: str | None = Field(
        default=None,
        description="its state (`running`, `sleeping`...); null: not reported",
        examples=["sleeping"],
    )
    cpu_percent: float | None = Field(
        default=None,
        description="its CPU use in percent of one core (above 100 on several); null: not reported",
        examples=[2.5],
    )
    memory_percent: float | None = Field(
        default=None,
        description="its resident memory in percent of the host's memory; null: not reported",
        examples=[1.2],
    )
    memory_rss_bytes: int | None = Field(
        default=None, description="its resident set size in bytes; null: not reported", examples=[52428800]
    )


class ProcessesOut(BaseModel):
    """The newest process sample of the server."""

    timestamp: datetime | None = Field(
        description="the time of the sample the list comes from (UTC); null: none was ever sent",
        examples=[EXAMPLE_TIME],
    )
    processes: list[ProcessOut] = Field(description="its processes, as the agent sent them (empty when none)")


class ContainerOut(BaseModel):
    """One Docker container of the newest sample."""

    id: str = Field(description="the container's id", examples=["4f2a9c1b7e3d"])
    name: str = Field(description="its name", examples=["web"])
    image: str | None = Field(description="its image; null: not reported", examples=["nginx:1.27"])
    state: str | None = Field(
        description="Docker's state (`running`, `exited`...); null: not reported", examples=["running"]
    )
    status: str | None = Field(
        description="Docker's status line; null: not reported", examples=["Up 2 hours"]
    )
    cpu_percent: float | None = Field(
        description="its CPU use in percent of one core; null: not reported (a stopped container)",
        examples=[0.8],
    )
    memory_bytes: int | None = Field(
        description="its memory use in bytes; null: not reported", examples=[73400320]
    )


class ContainersOut(BaseModel):
    """The server's Docker containers, from its newest sample that has them."""

    server_id: uuid.UUID = Field(description="the server", examples=[EXAMPLE_SERVER])
    time: datetime = Field(
        description="the time of the sample the list comes from (UTC)", examples=[EXAMPLE_TIME]
    )
    containers: list[ContainerOut] = Field(description="its containers")


class DockerLogsOut(BaseModel):
    """The last lines of a container's logs, fetched by the agent."""

    command_id: uuid.UUID = Field(description=_COMMAND_ID, examples=[EXAMPLE_COMMAND])
    container_id: str = Field(description="the container", examples=["4f2a9c1b7e3d"])
    logs: list[str] = Field(
        description="its last lines (`tail` of them at most), oldest first",
        examples=[["GET / 200", "GET /health 200"]],
    )


class CommandHistoryOut(BaseModel):
    """One command, container action or log fetch asked of the server, and its result."""

    command_id: uuid.UUID = Field(description=_COMMAND_ID, examples=[EXAMPLE_COMMAND])
    server_id: uuid.UUID = Field(description="the server it ran on", examples=[EXAMPLE_SERVER])
    requested_by: uuid.UUID | None = Field(
        description="the user who asked; null once that account is deleted", examples=[EXAMPLE_USER]
    )
    action: str = Field(
        description="what was asked: `shell` (a command), or a container's `start`, `stop`, `restart` "
        "or `logs`",
        examples=["shell"],
    )
    command: str | None = Field(
        description="the command line; null for a container action", examples=["uptime"]
    )
    container_id: str | None = Field(description="the container; null for a command", examples=[None])
    requested_at: datetime = Field(description="when it was asked (UTC)", examples=[EXAMPLE_TIME])
    success: bool | None = Field(
        description="whether it succeeded; null while no result came back", examples=[True]
    )
    exit_code: int | None = Field(description=_EXIT_CODE, examples=[0])
    duration_ms: int | None = Field(description=_DURATION, examples=[12])
    output: str | None = Field(description=_OUTPUT, examples=[" 12:00:00 up 3 days,  load average: 0.10"])
    error: str | None = Field(
        description="why it failed; null when it did not (or has no result yet)", examples=[None]
    )
    finished_at: datetime | None = Field(
        description="when its result came back (UTC); null while none did (timed out, or running)",
        examples=["2026-01-01T12:00:01Z"],
    )


class CommandHistoryPage(Page[CommandHistoryOut]):
    """A page of a server's command history."""


# --- audit ---------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    """One state-changing request, as the audit trail recorded it."""

    id: int = Field(description="the row's id, increasing", examples=[1042])
    time: datetime = Field(description="when the request was answered (UTC)", examples=[EXAMPLE_TIME])
    user_id: uuid.UUID | None = Field(
        description="who made it; null for a request without a signed-in user (a login, a refused token)",
        examples=[EXAMPLE_USER, None],
    )
    server_id: uuid.UUID | None = Field(
        description="the server it concerned; null when none", examples=[None, EXAMPLE_SERVER]
    )
    method: str = Field(description="the HTTP method", examples=["POST"])
    path: str = Field(description="the request's path", examples=["/api/v1/auth/login/json"])
    action: str = Field(
        description="the operation's name (its route: `login_json`, `set_command_settings`...)",
        examples=["login_json"],
    )
    status: int = Field(description="the HTTP status it was answered with", examples=[200])
    client: str | None = Field(
        description="the client's address; null when unknown", examples=["203.0.113.7"]
    )
    detail: dict[str, Any] = Field(
        description="the operation's particulars (never a password or a key); {} when none",
        examples=[{"email": EXAMPLE_EMAIL}],
    )


class AuditPage(Page[AuditOut]):
    """A page of audit rows."""
