"""One fleet socket (`/api/v1/ws/fleet`): every server the user can see, for the fleet page.

Order: accept; the auth frame (as on the other sockets); the user's visible servers (at most
`fleet_max_servers`, as `GET /fleet`); `auth_success` with their count; one `fleet_update` with
every server's current state; then, side by side, a sender (queued frames at once, and at most
one `fleet_update` of the changed servers per `fleet_flush_seconds`), a receiver (ping, re-auth),
the expiry watcher, the access watcher (a user deactivated closes the socket; a change of the
visible servers sends `fleet_changed` and follows the new set) and the queue's overflow signal.
`finally` always unsubscribes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from starlette.websockets import WebSocket, WebSocketDisconnect

from api.db import fleet as fleet_db
from api.db import users as users_db
from api.db.errors import DatabaseUnavailable
from api.db.pool import Pool, connection
from api.settings import ApiSettings
from schemas.frontend_wire import (
    AuthRequiredFrame,
    AuthSuccessFrame,
    CloseCode,
    ErrorFrame,
    PongFrame,
    encode,
)

from .errors import LiveError
from .fleet import FLEET_CHANGED, FleetQueue, FleetSubscriber
from .service import LiveService
from .socket import Auth, Close, Disconnected, SocketSession, run_first_done

log = logging.getLogger(__name__)


class FleetSession(SocketSession):
    def __init__(
        self, websocket: WebSocket, service: LiveService, pool: Pool, api_settings: ApiSettings
    ) -> None:
        super().__init__(websocket, service, pool, api_settings)
        self._overflow = asyncio.Event()
        self.queue = FleetQueue(self.settings.fleet_queue_frames, self._overflow.set)
        self.subscriber = FleetSubscriber(self.queue)
        self._visible: list[uuid.UUID] | None = None  # None until the first access check

    async def run(self) -> None:
        await self.ws.accept()
        try:
            auth = await self._authenticate()
            await self._start(auth)
            await run_first_done(
                [
                    asyncio.create_task(self._sender(), name="fleet-sender"),
                    asyncio.create_task(self._receiver(), name="fleet-receiver"),
                    asyncio.create_task(self._expiry(), name="fleet-expiry"),
                    asyncio.create_task(self._access_watch(), name="fleet-access"),
                    asyncio.create_task(self._overflow_watch(), name="fleet-overflow"),
                ]
            )
        except Close as close:
            await self._close(close.code, close.message)
        except LiveError as exc:
            await self._close(exc.code, str(exc))
        except (Disconnected, WebSocketDisconnect):
            pass
        except Exception:  # the socket's last line: a bug still closes it with a code
            log.exception("fleet session failed")
            await self._close(CloseCode.UNAVAILABLE, "internal error, reconnect later")
        finally:
            self.service.fleet_unsubscribe(self.subscriber)

    async def _authenticate(self) -> Auth:
        frame, claims = await self._read_auth()
        if frame.resume is not None or frame.window_seconds is not None or frame.lines is not None:
            raise Close(
                CloseCode.BAD_REQUEST, "the fleet socket has no history: no resume, window_seconds or lines"
            )
        self._auth = Auth(claims.subject, claims.expires_at, frame)
        try:
            await self._check_access(claims.subject)
        except DatabaseUnavailable as exc:
            raise Close(CloseCode.UNAVAILABLE, "database unavailable, reconnect later") from exc
        return self._auth

    async def _check_access(self, user_id: uuid.UUID) -> None:
        """Close unless the user is active; keep the visible servers current (DatabaseUnavailable
        passes)."""
        async with connection(self.pool) as conn:
            user = await users_db.get_user(conn, user_id)
            visible = await fleet_db.visible_server_ids(conn, user_id, self.api_settings.fleet_max_servers)
        if user is None or not user["is_active"]:
            raise Close(CloseCode.INVALID_TOKEN, "user not found or inactive")
        if self._visible is not None and set(visible) != set(self._visible):
            # Servers added, shared, removed or unshared: follow the new set, tell the page.
            await self.service.fleet_update(self.subscriber, self.pool, visible)
            self.queue.push(FLEET_CHANGED)
        self._visible = visible

    async def _start(self, auth: Auth) -> None:
        await self.service.wait_ready(self.settings.kafka_timeout_seconds)
        try:
            await self.service.fleet_subscribe(self.subscriber, self.pool, self._visible or [])
        except DatabaseUnavailable as exc:
            raise Close(CloseCode.UNAVAILABLE, "database unavailable, reconnect later") from exc
        await self._send(
            encode(
                AuthSuccessFrame(
                    server_id=None,
                    channel="fleet",
                    expires_at=auth.expires_at,
                    servers=len(self._visible or []),
                )
            )
        )
        # The starting state: every followed server; updates from here on are changes only.
        self.queue.take_dirty()
        await self._send(self.service.fleet.snapshot(self.subscriber))

    async def _sender(self) -> None:
        loop = asyncio.get_running_loop()
        flush = self.settings.fleet_flush_seconds
        next_flush = loop.time() + flush
        queue = self.queue
        while True:
            queue.changed.clear()
            while queue.frames:
                await self._send(queue.frames.popleft())
            if not queue.dirty:
                await queue.changed.wait()
                continue
            wait = next_flush - loop.time()
            if wait > 0:
                # At most one update per period; frames that must go at once wake the sender.
                try:
                    async with asyncio.timeout(wait):
                        await queue.changed.wait()
                except TimeoutError:
                    pass
                continue
            text = self.service.fleet.flush_text(self.subscriber)
            next_flush = loop.time() + flush
            if text is not None:
                await self._send(text)

    async def _overflow_watch(self) -> None:
        await self._overflow.wait()
        raise Close(CloseCode.SLOW_CONSUMER, "slow consumer: the socket's queue overflowed; reconnect")

    def _reply(self, frame: ErrorFrame | PongFrame | AuthRequiredFrame) -> None:
        self.queue.push(encode(frame))
