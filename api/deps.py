"""Dependencies shared by every route, as `Annotated` aliases.

They take `HTTPConnection`, so the same aliases serve REST routes and WebSocket endpoints.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from schemas import tokens

from .db import servers as servers_db
from .db import users as users_db
from .db.pool import Pool, connection
from .errors import Forbidden, NotFound, TokenExpired, Unauthorized
from .models import MAX_TAGS, Tag
from .settings import ApiSettings
from .state import Resources


def get_resources(conn: HTTPConnection) -> Resources:
    resources: Resources = conn.app.state.resources
    return resources


def get_settings(conn: HTTPConnection) -> ApiSettings:
    settings: ApiSettings = conn.app.state.settings
    return settings


def get_pool(conn: HTTPConnection) -> Pool:
    return get_resources(conn).pool


# `?tag=a&tag=b`: only servers carrying every one of the tags.
TagsQuery = Annotated[list[Tag] | None, Query(max_length=MAX_TAGS, description="only servers with every tag")]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
PoolDep = Annotated[Pool, Depends(get_pool)]


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: uuid.UUID
    email: str
    username: str
    full_name: str | None
    is_active: bool
    created_at: datetime


_bearer = HTTPBearer(auto_error=False, description="an access token from /api/v1/auth/login")


def access_claims(settings: ApiSettings, token: str) -> tokens.TokenClaims:
    """The claims of a valid access token (signature, algorithm, audience, issuer, expiry, type)."""
    try:
        return tokens.decode(
            settings.common.jwt_secret.get_secret_value(),
            token,
            "access",
            leeway=settings.token_leeway_seconds,
        )
    except tokens.TokenError as exc:
        if exc.expired:
            raise TokenExpired("token expired") from exc
        raise Unauthorized("invalid token") from exc


async def user_for_token(settings: ApiSettings, pool: Pool, token: str) -> CurrentUser:
    """The active user an access token belongs to; sockets call this with the token they got."""
    claims = access_claims(settings, token)
    async with connection(pool) as conn:
        row = await users_db.get_user(conn, claims.subject)
    if row is None or not row["is_active"]:
        raise Unauthorized("user not found or inactive")
    return CurrentUser(
        id=row["id"],
        email=row["email"],
        username=row["username"],
        full_name=row["full_name"],
        is_active=row["is_active"],
        created_at=row["created_at"],
    )


async def get_current_user(
    conn: HTTPConnection,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CurrentUser:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    user = await user_for_token(get_settings(conn), get_pool(conn), credentials.credentials)
    conn.state.user_id = user.id  # read by the audit middleware
    return user


UserDep = Annotated[CurrentUser, Depends(get_current_user)]


async def require_role(
    pool: Pool, user: CurrentUser, server_id: uuid.UUID, needed: servers_db.Role
) -> servers_db.Role:
    """The user's role on the server, when it is at least `needed`.

    No role at all: 404 (the server is not revealed). A lower role: 404 too for a role below
    viewer, 403 otherwise (the user can see the server, so saying "not allowed" reveals nothing).
    """
    async with connection(pool) as conn:
        role = await servers_db.server_role(conn, user.id, server_id)
    if role is None:
        raise NotFound("server not found")
    if not servers_db.has_role(role, needed):
        raise Forbidden(f"this needs the {needed} role on the server (you are {role})")
    return role
