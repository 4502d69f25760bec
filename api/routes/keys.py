"""API keys of the agents: create (the plaintext is shown once), list, deactivate, delete, and
`/me` for an agent to check its own key. Deactivation, deletion and expiry publish a
`KeyRevocation`, on which every ingest process closes the key's live socket."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import TypeAdapter

from schemas import apikeys
from schemas.agent_wire import INVALID_KEY
from schemas.canonical import KeyRevocation

from ..db import keys as keys_db
from ..db import servers as servers_db
from ..db.pool import Pool, Record, connection
from ..deps import PoolDep, ResourcesDep, SettingsDep, UserDep, require_role
from ..errors import NotFound, Unauthorized, Unprocessable
from ..install import install_command
from ..models import ApiKeyCreated, ApiKeyIn, ApiKeyMe, ApiKeyOut, ApiKeyPage
from ..openapi import problems
from ..pagination import Keyset, LegacyPagerDep, legacy_page, negotiated
from .install import public_url

router = APIRouter(prefix="/api-keys", tags=["api keys"])


def _key_out(row: Record) -> ApiKeyOut:
    return ApiKeyOut(
        id=row["id"],
        server_id=row["server_id"],
        name=row["name"],
        is_active=row["is_active"] and not _expired(row["expires_at"]),
        last_used=row["last_used"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
    )


def _expired(expires_at: datetime | None) -> bool:
    return expires_at is not None and expires_at <= datetime.now(UTC)


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra=problems("forbidden", "not-found"))
async def create_key(
    body: ApiKeyIn, request: Request, user: UserDep, pool: PoolDep, settings: SettingsDep
) -> ApiKeyCreated:
    """A new key for a server (owners only). The plaintext `key` is in this answer only: the
    database keeps an HMAC of its secret part, never the key."""
    request.state.audit_server_id = body.server_id
    await require_role(pool, user, body.server_id, "owner")
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise Unprocessable("expires_at is in the past", loc=("body", "expires_at"))
    plaintext, parsed = apikeys.generate()
    secret_hash = apikeys.hash_secret(settings.common.key_pepper.get_secret_value().encode(), parsed.secret)
    async with connection(pool) as conn:
        row = await keys_db.insert_api_key(
            conn, uuid.uuid4(), body.server_id, parsed.lookup_id, secret_hash, body.name, body.expires_at
        )
    line = install_command(public_url(settings, request), plaintext)
    return ApiKeyCreated(**_key_out(row).model_dump(), key=plaintext, install_command=line)


@router.get("/me", openapi_extra=problems("rate-limited"))
async def key_me(
    request: Request,
    resources: ResourcesDep,
    x_api_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ApiKeyMe:
    """For an agent: which server its key belongs to. 401 for a missing, wrong, inactive or
    expired key (one answer for all, so a caller learns nothing about other keys). Failures are
    counted per client address: past `key_check_failures` they answer 429, while a valid key is
    still answered (keys cannot be guessed; the limit is on hammering, and must not lock out an
    agent sharing the address)."""
    client = request.client.host if request.client else "?"
    parsed = apikeys.parse(x_api_key or "")
    row = None
    if parsed is not None:
        async with connection(resources.pool) as conn:
            row = await keys_db.get_api_key_by_lookup(conn, parsed.lookup_id)
    pepper = resources.settings.common.key_pepper.get_secret_value().encode()
    if (
        parsed is None
        or row is None
        or not apikeys.verify(pepper, parsed.secret, row["secret_hash"])
        or not row["is_active"]
        or _expired(row["expires_at"])
    ):
        resources.key_check_failures.check(client, "failed key checks from this address")
        resources.key_check_failures.count(client)
        raise Unauthorized(INVALID_KEY)
    return ApiKeyMe(server_id=row["server_id"], key_id=row["id"], name=row["name"], is_active=True)


KEYS = Keyset("api_keys", (datetime, uuid.UUID))
_KEY_LIST = TypeAdapter(list[ApiKeyOut])


@router.get(
    "/server/{server_id}",
    response_model=list[ApiKeyOut],
    openapi_extra=legacy_page(ApiKeyPage) | problems("forbidden"),
)
async def list_keys(server_id: uuid.UUID, user: UserDep, pool: PoolDep, pager: LegacyPagerDep) -> Response:
    """The server's API keys without their secret, oldest first (owners only). A bare array, as
    the legacy spec has it; `Accept: application/vnd.fleetpulse.page+json` answers the page
    (`{items, next_cursor}`) instead."""
    await require_role(pool, user, server_id, "owner")
    async with connection(pool) as conn:
        rows = await keys_db.list_api_keys(conn, server_id, after=pager.after(KEYS), limit=pager.fetch)
    page, next_cursor = pager.cut(KEYS, rows, lambda row: (row["created_at"], row["id"]))
    return negotiated(
        pager, ApiKeyPage(items=[_key_out(r) for r in page], next_cursor=next_cursor), _KEY_LIST
    )


async def _owned_key(pool: Pool, user: UserDep, key_id: uuid.UUID) -> Record:
    async with connection(pool) as conn:
        row = await keys_db.get_api_key(conn, key_id)
        role = await servers_db.server_role(conn, user.id, row["server_id"]) if row else None
    if row is None or role is None:
        raise NotFound("API key not found")
    await require_role(pool, user, row["server_id"], "owner")
    return row


@router.post("/{key_id}/deactivate", openapi_extra=problems("forbidden"))
async def deactivate_key(
    key_id: uuid.UUID, request: Request, user: UserDep, resources: ResourcesDep
) -> ApiKeyOut:
    """Deactivate the key and close its agent's socket. Safe to repeat: a repeat announces the
    revocation again (use it if the first answer was a 503)."""
    row = await _owned_key(resources.pool, user, key_id)
    request.state.audit_server_id = row["server_id"]
    async with connection(resources.pool) as conn:
        updated = await keys_db.deactivate_api_key(conn, key_id)
    assert updated is not None
    await resources.producer.revoke_key(
        KeyRevocation(key_id=key_id, server_id=row["server_id"], reason="deactivated", time=datetime.now(UTC))
    )
    return _key_out(updated)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, openapi_extra=problems("forbidden"))
async def delete_key(key_id: uuid.UUID, request: Request, user: UserDep, resources: ResourcesDep) -> None:
    row = await _owned_key(resources.pool, user, key_id)
    request.state.audit_server_id = row["server_id"]
    async with connection(resources.pool) as conn:
        await keys_db.delete_api_key(conn, key_id)
    await resources.producer.revoke_key(
        KeyRevocation(key_id=key_id, server_id=row["server_id"], reason="deleted", time=datetime.now(UTC))
    )
