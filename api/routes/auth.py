"""Accounts: register, login (OAuth2 form or JSON), refresh with rotation, logout, me, password."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from schemas import tokens

from ..db import users as users_db
from ..db.errors import DuplicateError
from ..db.pool import Conn, Record, connection, transaction
from ..deps import CurrentUser, PoolDep, ResourcesDep, SettingsDep, UserDep
from ..errors import Conflict, TokenExpired, Unauthorized, Unprocessable
from ..models import (
    EXAMPLE_EMAIL,
    EXAMPLE_PASSWORD,
    LoginIn,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    Token,
    UserOut,
)
from ..openapi import problems
from ..passwords import hash_password, verify_password
from ..settings import ApiSettings

router = APIRouter(prefix="/auth", tags=["auth"])


def _user_out(row: Record | CurrentUser) -> UserOut:
    if isinstance(row, CurrentUser):
        return UserOut(
            id=row.id,
            email=row.email,
            username=row.username,
            full_name=row.full_name,
            is_active=row.is_active,
            created_at=row.created_at,
        )
    return UserOut(
        id=row["id"],
        email=row["email"],
        username=row["username"],
        full_name=row["full_name"],
        is_active=row["is_active"],
        created_at=row["created_at"],
    )


async def _issue(
    conn: Conn, settings: ApiSettings, user: Record, family_id: uuid.UUID | None = None
) -> Token:
    secret = settings.common.jwt_secret.get_secret_value()
    now = datetime.now(UTC)
    access_lifetime = timedelta(minutes=settings.access_token_minutes)
    access, _ = tokens.encode(secret, user["id"], "access", access_lifetime, now=now)
    refresh, claims = tokens.encode(
        secret,
        user["id"],
        "refresh",
        timedelta(days=settings.refresh_token_days),
        family_id=family_id or uuid.uuid4(),
        now=now,
    )
    assert claims.family_id is not None
    await users_db.insert_refresh_token(
        conn, claims.token_id, claims.family_id, user["id"], claims.issued_at, claims.expires_at
    )
    return Token(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(access_lifetime.total_seconds()),
        user=_user_out(user),
    )


@router.post("/register", status_code=status.HTTP_201_CREATED, openapi_extra=problems("conflict"))
async def register(body: RegisterIn, request: Request, pool: PoolDep, settings: SettingsDep) -> Token:
    password_hash = await hash_password(body.password)
    user_id = uuid.uuid4()
    request.state.audit_detail = {"email": body.email}
    try:
        async with transaction(pool) as conn:
            user = await users_db.insert_user(
                conn, user_id, body.email, body.username, body.full_name, password_hash
            )
            token = await _issue(conn, settings, user)
    except DuplicateError as exc:
        raise Conflict("a user with this email or username already exists") from exc
    request.state.user_id = user_id
    return token


async def _login(request: Request, resources: ResourcesDep, email: str, password: str) -> Token:
    client = request.client.host if request.client else "?"
    account = email.lower()
    limit_key = (account, client)
    request.state.audit_detail = {"email": email[:320]}  # the account tried, success or not
    # Every limit is decided before the password is checked, so a guesser learns nothing past
    # it. Three keys (settings.py): one address can lock out at most one account, from itself;
    # failures from everywhere else or on other accounts only count toward the much larger
    # per-account and per-address limits. A success clears its (email, address) count.
    resources.account_failures.check(account, "failed logins for this account")
    resources.address_failures.check(client, "failed logins from this address")
    resources.login_limiter.hit(limit_key, "login attempts")
    async with connection(resources.pool) as conn:
        user = await users_db.get_user_by_email(conn, email)
    ok = await verify_password(user["password_hash"] if user else None, password)
    if user is None or not ok or not user["is_active"]:
        resources.account_failures.count(account)
        resources.address_failures.count(client)
        raise Unauthorized("incorrect email or password")
    request.state.user_id = user["id"]
    resources.login_limiter.reset(limit_key)
    async with transaction(resources.pool) as conn:
        return await _issue(conn, resources.settings, user)


class PasswordForm(OAuth2PasswordRequestForm):
    """OAuth2's password form (RFC 6749, 4.3), each field described for the OpenAPI document."""

    def __init__(
        self,
        *,
        grant_type: Annotated[
            str | None,
            Form(pattern="^password$", description="`password`, or left out", examples=["password"]),
        ] = None,
        username: Annotated[
            str, Form(description="the account's e-mail address (case-insensitive)", examples=[EXAMPLE_EMAIL])
        ],
        password: Annotated[
            str,
            Form(
                json_schema_extra={"format": "password"},
                description="the account's password",
                examples=[EXAMPLE_PASSWORD],
            ),
        ],
        scope: Annotated[
            str, Form(description="OAuth2 scopes, space-separated; ignored", examples=[""])
        ] = "",
        client_id: Annotated[
            str | None, Form(description="an OAuth2 client id; ignored", examples=[None])
        ] = None,
        client_secret: Annotated[
            str | None,
            Form(
                json_schema_extra={"format": "password"},
                description="an OAuth2 client secret; ignored",
                examples=[None],
            ),
        ] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


@router.post("/login", openapi_extra=problems("bad-request", "unauthorized", "rate-limited"))
async def login(request: Request, resources: ResourcesDep, form: Annotated[PasswordForm, Depends()]) -> Token:
    """The OAuth2 password form: the email goes in `username`."""
    return await _login(request, resources, form.username, form.password)


@router.post("/login/json", openapi_extra=problems("unauthorized", "rate-limited"))
async def login_json(request: Request, resources: ResourcesDep, body: LoginIn) -> Token:
    return await _login(request, resources, body.email, body.password)


@router.post("/refresh", openapi_extra=problems("unauthorized", "token-expired"))
async def refresh(body: RefreshIn, pool: PoolDep, settings: SettingsDep) -> Token:
    """Rotate: the presented refresh token is used up and a new pair is returned. Presenting a
    token that was already used (or revoked) revokes its whole family: whoever holds a stolen copy
    and the rightful owner are both logged out, and the owner logs in again."""
    try:
        claims = tokens.decode(
            settings.common.jwt_secret.get_secret_value(),
            body.refresh_token,
            "refresh",
            leeway=settings.token_leeway_seconds,
        )
    except tokens.TokenError as exc:
        if exc.expired:
            raise TokenExpired("refresh token expired") from exc
        raise Unauthorized("invalid refresh token") from exc
    reused = False
    async with transaction(pool) as conn:
        row = await users_db.lock_refresh_token(conn, claims.token_id)
        if row is None:
            raise Unauthorized("unknown refresh token")
        if row["used_at"] is not None or row["revoked_at"] is not None:
            await users_db.revoke_refresh_family(conn, row["family_id"])
            reused = True  # the revocation commits with this transaction, then we refuse
        else:
            user = await users_db.get_user(conn, row["user_id"])
            if user is None or not user["is_active"]:
                raise Unauthorized("user not found or inactive")
            await users_db.mark_refresh_used(conn, claims.token_id)
            return await _issue(conn, settings, user, family_id=row["family_id"])
    assert reused
    raise Unauthorized("refresh token reuse detected: the session was revoked, log in again")


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: UserDep, pool: PoolDep, settings: SettingsDep, body: RefreshIn | None = None) -> None:
    """Revoke the given refresh token's family, or every refresh token of the user when none is
    given. Access tokens already issued stay valid until they expire (minutes)."""
    async with transaction(pool) as conn:
        if body is None:
            await users_db.revoke_user_refresh_tokens(conn, user.id)
            return
        try:
            claims = tokens.decode(
                settings.common.jwt_secret.get_secret_value(), body.refresh_token, "refresh"
            )
        except tokens.TokenError as exc:
            raise Unprocessable("invalid refresh token", loc=("body", "refresh_token")) from exc
        if claims.subject != user.id or claims.family_id is None:
            raise Unprocessable("this refresh token is not yours", loc=("body", "refresh_token"))
        await users_db.revoke_refresh_family(conn, claims.family_id)


@router.get("/me")
async def me(user: UserDep) -> UserOut:
    return _user_out(user)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, openapi_extra=problems("rate-limited"))
async def change_password(user: UserDep, resources: ResourcesDep, body: PasswordChangeIn) -> None:
    """Change the password; every refresh token of the user is revoked (other sessions end).
    Attempts are limited per user before the current password is checked (a stolen access token
    cannot be used to guess it)."""
    resources.password_limiter.hit(user.id, "password changes")
    pool = resources.pool
    async with connection(pool) as conn:
        row = await users_db.get_user(conn, user.id)
    if row is None or not await verify_password(row["password_hash"], body.current_password):
        raise Unauthorized("current password is incorrect")
    new_hash = await hash_password(body.new_password)
    async with transaction(pool) as conn:
        await users_db.set_password(conn, user.id, new_hash)
        await users_db.revoke_user_refresh_tokens(conn, user.id)
