"""Notification channels (`/notification-channels`): where an owner's alerts are sent.

A channel belongs to the user who made it: only they see or change it (anyone else gets 404,
as for a channel that does not exist). Its secret is write-only (`has_secret`). A channel may be
narrowed to one server (which the caller must own: alerts notify the server owner's channels)
and to one rule (the caller's own). Every change is audited by the middleware, with the channel
id in the row's detail.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, status

from schemas.alerts import NotificationChannel

from ..db import channels as channels_db
from ..db import servers as servers_db
from ..db.pool import Pool, Record, connection
from ..deps import PoolDep, SettingsDep, UserDep, require_role
from ..errors import Forbidden, NotFound, QuotaExceeded
from ..models import ChannelIn, ChannelOut, ChannelPage, ChannelTestOut, ChannelUpdate
from ..notify import send_test
from ..observe import audit_detail, audit_server
from ..openapi import problems
from ..pagination import Keyset, PagerDep

router = APIRouter(prefix="/notification-channels", tags=["notification channels"])

CHANNELS = Keyset("channels", (datetime, uuid.UUID))


def _out(row: Record) -> ChannelOut:
    return ChannelOut(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        url=row["url"],
        has_secret=row["has_secret"],
        server_id=row["server_id"],
        rule_id=row["rule_id"],
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _check_assignment(
    pool: Pool, user: UserDep, server_id: uuid.UUID | None, rule_id: uuid.UUID | None
) -> None:
    """A server named must be one the caller owns; a rule named must be the caller's."""
    if server_id is not None:
        await require_role(pool, user, server_id, "owner")  # a stranger: 404; below owner: 403
        async with connection(pool) as conn:
            owner = await servers_db.server_owner_id(conn, server_id)
        if owner != user.id:
            raise Forbidden("a server's alerts notify the channels of its owner only; you are a co-owner")
    if rule_id is not None:
        async with connection(pool) as conn:
            if await channels_db.rule_owner(conn, rule_id) != user.id:
                raise NotFound("rule not found")


async def _channel(pool: Pool, user: UserDep, channel_id: uuid.UUID) -> Record:
    async with connection(pool) as conn:
        row = await channels_db.get_channel(conn, user.id, channel_id)
    if row is None:
        raise NotFound("notification channel not found")
    return row


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=problems("forbidden", "not-found", "quota-exceeded"),
)
async def create_channel(
    body: ChannelIn, user: UserDep, pool: PoolDep, settings: SettingsDep, request: Request
) -> ChannelOut:
    await _check_assignment(pool, user, body.server_id, body.rule_id)
    async with connection(pool) as conn:
        if await channels_db.count_channels(conn, user.id) >= settings.channels_max_per_user:
            raise QuotaExceeded(f"at most {settings.channels_max_per_user} notification channels per user")
        row = await channels_db.insert_channel(
            conn,
            uuid.uuid4(),
            user.id,
            name=body.name,
            kind=body.kind,
            url=body.url,
            secret=body.secret,
            server_id=body.server_id,
            rule_id=body.rule_id,
            enabled=body.enabled,
        )
    audit_detail(request.state, channel_id=row["id"])
    return _out(row)


@router.get("")
async def list_channels(
    user: UserDep,
    pool: PoolDep,
    pager: PagerDep,
) -> ChannelPage:
    """The caller's own channels, oldest first."""
    async with connection(pool) as conn:
        rows = await channels_db.list_channels(conn, user.id, after=pager.after(CHANNELS), limit=pager.fetch)
    page, next_cursor = pager.cut(CHANNELS, rows, lambda row: (row["created_at"], row["id"]))
    return ChannelPage(items=[_out(r) for r in page], next_cursor=next_cursor)


@router.get("/{channel_id}")
async def get_channel(channel_id: uuid.UUID, user: UserDep, pool: PoolDep) -> ChannelOut:
    return _out(await _channel(pool, user, channel_id))


@router.put("/{channel_id}", openapi_extra=problems("forbidden"))
async def update_channel(
    channel_id: uuid.UUID, body: ChannelUpdate, user: UserDep, pool: PoolDep, request: Request
) -> ChannelOut:
    """Change the fields given; `secret`, `server_id` and `rule_id` may be set to null."""
    audit_detail(request.state, channel_id=channel_id)
    await _channel(pool, user, channel_id)  # someone else's channel: 404 before anything else
    changes = body.model_dump(exclude_unset=True)
    # null is "clear" only where a column may be empty; elsewhere it leaves the field alone.
    changes = {k: v for k, v in changes.items() if v is not None or k in ("secret", "server_id", "rule_id")}
    await _check_assignment(pool, user, changes.get("server_id"), changes.get("rule_id"))
    async with connection(pool) as conn:
        row = await channels_db.update_channel(conn, user.id, channel_id, changes)
    if row is None:
        raise NotFound("notification channel not found")  # deleted meanwhile
    return _out(row)


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(channel_id: uuid.UUID, user: UserDep, pool: PoolDep, request: Request) -> None:
    audit_detail(request.state, channel_id=channel_id)
    async with connection(pool) as conn:
        if not await channels_db.delete_channel(conn, user.id, channel_id):
            raise NotFound("notification channel not found")


@router.post("/{channel_id}/test")
async def test_channel(
    channel_id: uuid.UUID, user: UserDep, pool: PoolDep, settings: SettingsDep, request: Request
) -> ChannelTestOut:
    """Send a test notification now, through the same payload builder as real alerts (a signed
    webhook, or a Slack-compatible message), and say how the receiver answered. Works on a
    disabled channel too (testing before enabling it)."""
    row = await _channel(pool, user, channel_id)
    async with connection(pool) as conn:
        secret = await channels_db.get_secret(conn, user.id, channel_id)
    channel = NotificationChannel(
        id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        kind=row["kind"],
        url=row["url"],
        secret=secret,
        server_id=row["server_id"],
        rule_id=row["rule_id"],
        enabled=row["enabled"],
    )
    result = await send_test(channel, timeout_seconds=settings.channel_test_timeout_seconds)
    detail = {"channel_id": channel_id, "delivered": result.delivered, "status_code": result.status_code}
    if row["server_id"] is not None:
        audit_server(request.state, row["server_id"])
    audit_detail(request.state, **detail)
    return ChannelTestOut(delivered=result.delivered, status_code=result.status_code, error=result.error)
