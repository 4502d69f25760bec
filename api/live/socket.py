"""What every frontend socket shares: the auth frame, closing with a code, sends bounded by a
timeout, the receiver (ping, re-auth), the token expiry watcher and the access watcher.

`LiveSession` (one server's metrics or logs) and `FleetSession` (every server of the user) build
on it; a subclass says how to check access and where replies are queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from starlette.websockets import WebSocket

from api.db.errors import DatabaseUnavailable
from api.db.pool import Pool
from api.settings import ApiSettings
from schemas import tokens
from schemas.frontend_wire import (
    CLIENT_FRAME,
    AuthFrame,
    AuthRequiredFrame,
    CloseCode,
    ErrorFrame,
    PingFrame,
    PongFrame,
    encode,
)

from .service import LiveService

log = logging.getLogger(__name__)


class Close(Exception):
    """End the session: an error frame with `message`, then a close with `code`."""

    def __init__(self, code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Disconnected(Exception):
    pass


@dataclass(slots=True)
class Auth:
    user_id: uuid.UUID
    expires_at: datetime
    frame: AuthFrame


class SocketSession:
    def __init__(
        self, websocket: WebSocket, service: LiveService, pool: Pool, api_settings: ApiSettings
    ) -> None:
        self.ws = websocket
        self.service = service
        self.settings = service.settings
        self.pool = pool
        self.api_settings = api_settings
        self._renewed = asyncio.Event()
        self._auth: Auth | None = None

    # --- for subclasses ---------------------------------------------------------------------

    def _reply(self, frame: ErrorFrame | PongFrame | AuthRequiredFrame) -> None:
        """Queue a reply on the socket's outgoing queue (never waits on the socket)."""
        raise NotImplementedError

    async def _check_access(self, user_id: uuid.UUID) -> None:
        """Raise Close unless the user may still use this socket (DatabaseUnavailable passes)."""
        raise NotImplementedError

    # --- sending and closing ----------------------------------------------------------------

    async def _close(self, code: CloseCode, message: str) -> None:
        self.service.closes[int(code)] += 1
        # A client that stopped reading may never take these frames: bounded by a timeout.
        # Exception: the peer may already be gone in any of the ways a transport can fail.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.close_timeout_seconds):
                await self.ws.send_text(encode(ErrorFrame(message=message, code=int(code))))
                await self.ws.close(code=int(code), reason=message[:120])

    async def _send(self, text: str) -> None:
        try:
            async with asyncio.timeout(self.settings.send_timeout_seconds):
                await self.ws.send_text(text)
        except TimeoutError as exc:
            raise Close(CloseCode.SLOW_CONSUMER, "slow consumer: a send did not complete in time") from exc

    async def _receive_text(self) -> str:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise Disconnected
        text: str | None = message.get("text")
        if text is None:
            data: bytes | None = message.get("bytes")
            text = (data or b"").decode("utf-8", errors="replace")
        if len(text) > self.settings.max_frame_bytes:
            raise Close(CloseCode.TOO_LARGE, f"frame larger than {self.settings.max_frame_bytes} bytes")
        return text

    # --- auth ------------------------------------------------------------------------------------

    def _claims(self, token: str) -> tokens.TokenClaims:
        try:
            return tokens.decode(
                self.api_settings.common.jwt_secret.get_secret_value(),
                token,
                "access",
                leeway=self.api_settings.token_leeway_seconds,
            )
        except tokens.TokenError as exc:
            if exc.expired:
                raise Close(CloseCode.TOKEN_EXPIRED, "token expired: refresh it and reconnect") from exc
            raise Close(CloseCode.INVALID_TOKEN, "invalid token") from exc

    async def _read_auth(self) -> tuple[AuthFrame, tokens.TokenClaims]:
        """The first frame, within `auth_timeout_seconds`: a valid auth frame with a valid token."""
        try:
            async with asyncio.timeout(self.settings.auth_timeout_seconds):
                text = await self._receive_text()
        except TimeoutError as exc:
            raise Close(
                CloseCode.AUTH_TIMEOUT, f"no auth frame within {self.settings.auth_timeout_seconds:g} seconds"
            ) from exc
        try:
            frame = CLIENT_FRAME.validate_json(text)
        except ValidationError as exc:
            raise Close(CloseCode.BAD_REQUEST, f"Invalid message format: {first_error(exc)}") from exc
        if not isinstance(frame, AuthFrame):
            raise Close(CloseCode.BAD_REQUEST, 'the first frame must be {"type": "auth", "token": ...}')
        return frame, self._claims(frame.token)

    # --- the open socket -----------------------------------------------------------------------

    async def _receiver(self) -> None:
        while True:
            text = await self._receive_text()
            try:
                frame = CLIENT_FRAME.validate_json(text)
            except ValidationError as exc:
                self._reply(ErrorFrame(message=f"Invalid message format: {first_error(exc)}"))
                continue
            if isinstance(frame, PingFrame):
                self._reply(PongFrame(id=frame.id))
            else:
                self._renew(frame)

    def _renew(self, frame: AuthFrame) -> None:
        assert self._auth is not None
        claims = self._claims(frame.token)  # an invalid or expired token ends the session
        if claims.subject != self._auth.user_id:
            raise Close(CloseCode.INVALID_TOKEN, "the token belongs to another user")
        if claims.expires_at > self._auth.expires_at:
            self._auth.expires_at = claims.expires_at
            self._renewed.set()

    async def _expiry(self) -> None:
        assert self._auth is not None
        loop = asyncio.get_running_loop()
        while True:
            expires = self._auth.expires_at
            ask_at = expires - timedelta(seconds=self.settings.reauth_ahead_seconds)
            await asyncio.sleep(max(0.0, (ask_at - datetime.now(UTC)).total_seconds()))
            self._renewed.clear()
            self._reply(AuthRequiredFrame(expires_at=expires))
            remaining = (expires - datetime.now(UTC)).total_seconds() + self.api_settings.token_leeway_seconds
            try:
                async with asyncio.timeout_at(loop.time() + max(0.0, remaining)):
                    await self._renewed.wait()
            except TimeoutError as exc:
                raise Close(CloseCode.TOKEN_EXPIRED, "token expired: refresh it and reconnect") from exc

    async def _access_watch(self) -> None:
        """Access checked again on the open socket: a share removed, a server deleted or a user
        deactivated ends it within `access_recheck_seconds` (a token alone would keep it open
        until its expiry)."""
        assert self._auth is not None
        while True:
            await asyncio.sleep(self.settings.access_recheck_seconds)
            try:
                await self._check_access(self._auth.user_id)
            except DatabaseUnavailable:
                log.warning("live: access of a socket not rechecked, database unavailable")


async def run_first_done(tasks: list[asyncio.Task[None]]) -> None:
    """Run side by side; the first to finish cancels the others; its exception is raised."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid"))
