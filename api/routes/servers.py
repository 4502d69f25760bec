"""Servers (CRUD for their owner), sharing, and the remote-command switch."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Response, status
from pydantic import TypeAdapter

from schemas.canonical import KeyRevocation

from ..db import servers as servers_db
from ..db import users as users_db
from ..db.pool import Pool, Record, connection, transaction
from ..deps import PoolDep, ResourcesDep, SettingsDep, TagsQuery, UserDep, require_role
from ..errors import NotFound, Unprocessable
from ..models import (
    CommandSettingsIn,
    ServerIn,
    ServerOut,
    ServerPage,
    ServerUpdate,
    ShareIn,
    ShareOut,
    SharePage,
)
from ..openapi import problems
from ..pagination import Keyset, LegacyPagerDep, PagerDep, RemovedOffset, legacy_page, negotiated
from ..settings import ApiSettings

router = APIRouter(prefix="/servers", tags=["servers"])


def server_out(row: Record) -> ServerOut:
    return ServerOut(
        id=row["id"],
        name=row["name"],
        host=row["host"],
        port=row["port"],
        metadata=row["metadata"],
        tags=list(row["tags"]),
        status=row["status"],
        last_seen=row["last_seen"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        role=row["role"],
        commands_enabled=row["commands_enabled"],
        command_allowlist=list(row["command_allowlist"]),
    )


async def _server(pool: Pool, user_id: uuid.UUID, server_id: uuid.UUID) -> Record:
    async with connection(pool) as conn:
        row = await servers_db.get_server(conn, user_id, server_id)
    if row is None:
        raise NotFound("server not found")
    return row


def _check_metadata(metadata: dict[str, Any] | None, settings: ApiSettings) -> None:
    """A server's metadata is stored as it came: at most `metadata_max_bytes` of JSON."""
    if metadata is None:
        return
    size = len(orjson.dumps(metadata))
    if size > settings.metadata_max_bytes:
        raise Unprocessable(
            f"metadata is {size} bytes of JSON; at most {settings.metadata_max_bytes} are stored"
        )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_server(body: ServerIn, user: UserDep, pool: PoolDep, settings: SettingsDep) -> ServerOut:
    _check_metadata(body.metadata, settings)
    async with connection(pool) as conn:
        row = await servers_db.insert_server(
            conn, uuid.uuid4(), user.id, body.name, body.host, body.port, body.metadata, body.tags
        )
    return server_out(row)


SERVERS = Keyset("servers", (datetime, uuid.UUID))
SHARES = Keyset("shares", (datetime, uuid.UUID))
_SERVER_LIST = TypeAdapter(list[ServerOut])


@router.get("", response_model=list[ServerOut], openapi_extra=legacy_page(ServerPage))
async def list_servers(
    user: UserDep, pool: PoolDep, pager: LegacyPagerDep, _offset: RemovedOffset, tag: TagsQuery = None
) -> Response:
    """Servers the caller owns or that are shared with them, with the caller's role on each,
    oldest first. A bare array, as the legacy spec has it; `Accept: application/vnd.fleetpulse.page+json`
    answers the page (`{items, next_cursor}`) instead."""
    async with connection(pool) as conn:
        rows = await servers_db.list_servers(
            conn, user.id, after=pager.after(SERVERS), limit=pager.fetch, tags=tag
        )
    page, next_cursor = pager.cut(SERVERS, rows, lambda row: (row["created_at"], row["id"]))
    return negotiated(
        pager, ServerPage(items=[server_out(r) for r in page], next_cursor=next_cursor), _SERVER_LIST
    )


@router.get("/{server_id}")
async def get_server(server_id: uuid.UUID, user: UserDep, pool: PoolDep) -> ServerOut:
    return server_out(await _server(pool, user.id, server_id))


@router.put("/{server_id}", openapi_extra=problems("forbidden"))
async def update_server(
    server_id: uuid.UUID, body: ServerUpdate, user: UserDep, pool: PoolDep, settings: SettingsDep
) -> ServerOut:
    await require_role(pool, user, server_id, "owner")
    _check_metadata(body.metadata, settings)
    async with connection(pool) as conn:
        changes = body.model_dump(exclude_unset=True)
        # null clears host and port; name, metadata and tags cannot be null, so null leaves them
        # (an empty list clears the tags).
        changes = {k: v for k, v in changes.items() if v is not None or k in ("host", "port")}
        await servers_db.update_server(conn, server_id, changes)
    return server_out(await _server(pool, user.id, server_id))


@router.delete("/{server_id}", status_code=status.HTTP_204_NO_CONTENT, openapi_extra=problems("forbidden"))
async def delete_server(server_id: uuid.UUID, user: UserDep, resources: ResourcesDep) -> None:
    """Delete the server and its keys; its agent's socket is closed (a revocation per key)."""
    await require_role(resources.pool, user, server_id, "owner")
    async with transaction(resources.pool) as conn:
        key_ids = await servers_db.server_keys_ids(conn, server_id)
        await servers_db.delete_server(conn, server_id)
    now = datetime.now(UTC)
    for key_id in key_ids:
        await resources.producer.revoke_key(
            KeyRevocation(key_id=key_id, server_id=server_id, reason="deleted", time=now)
        )


@router.put("/{server_id}/commands", openapi_extra=problems("forbidden"))
async def set_command_settings(
    server_id: uuid.UUID, body: CommandSettingsIn, user: UserDep, pool: PoolDep
) -> ServerOut:
    """Turn remote commands on or off and set the allowlist (regular expressions; a command must
    match one in full). Owners only."""
    await require_role(pool, user, server_id, "owner")
    for index, pattern in enumerate(body.command_allowlist):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise Unprocessable(
                f"allowlist pattern {pattern!r} is not a valid regular expression: {exc}",
                loc=("body", "command_allowlist", index),
                error_type="invalid_pattern",
            ) from exc
    async with connection(pool) as conn:
        await servers_db.update_server(
            conn,
            server_id,
            {"commands_enabled": body.commands_enabled, "command_allowlist": body.command_allowlist},
        )
    return server_out(await _server(pool, user.id, server_id))


@router.get("/{server_id}/shares", openapi_extra=problems("forbidden"))
async def list_shares(server_id: uuid.UUID, user: UserDep, pool: PoolDep, pager: PagerDep) -> SharePage:
    """Who the server is shared with, and as what, oldest first (owners only)."""
    await require_role(pool, user, server_id, "owner")
    async with connection(pool) as conn:
        rows = await servers_db.list_shares(conn, server_id, after=pager.after(SHARES), limit=pager.fetch)
    page, next_cursor = pager.cut(SHARES, rows, lambda row: (row["created_at"], row["user_id"]))
    return SharePage(items=[ShareOut(**dict(row)) for row in page], next_cursor=next_cursor)


@router.post("/{server_id}/shares", status_code=status.HTTP_201_CREATED, openapi_extra=problems("forbidden"))
async def share_server(server_id: uuid.UUID, body: ShareIn, user: UserDep, pool: PoolDep) -> ShareOut:
    """Share with another user (by email) as viewer, operator or co-owner; sharing again changes
    the role."""
    await require_role(pool, user, server_id, "owner")
    async with transaction(pool) as conn:
        target = await users_db.get_user_by_email(conn, body.email)
        if target is None:
            raise NotFound("no user with this email")
        owner_id = await servers_db.server_owner_id(conn, server_id)
        if target["id"] == owner_id:
            raise Unprocessable("the server's owner already has every right", loc=("body", "email"))
        await servers_db.upsert_share(conn, server_id, target["id"], body.role, user.id)
        rows = await servers_db.list_shares(conn, server_id)
    return next(ShareOut(**dict(row)) for row in rows if row["user_id"] == target["id"])


@router.delete(
    "/{server_id}/shares/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra=problems("forbidden"),
)
async def unshare_server(server_id: uuid.UUID, user_id: uuid.UUID, user: UserDep, pool: PoolDep) -> None:
    await require_role(pool, user, server_id, "owner")
    async with connection(pool) as conn:
        if not await servers_db.delete_share(conn, server_id, user_id):
            raise NotFound("no such share")
