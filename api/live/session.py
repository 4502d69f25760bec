"""One frontend socket, from its auth frame to its close (protocol: docs/live.md).

Order of a session: accept; the auth frame within `auth_timeout_seconds` (nothing else is read
before it); the token, the user and the user's role on the server; history (database rows up to
the persisted offset, or nothing when resuming); `history_end` with the seam position; the Kafka
span between the seam and the hub's window, then the window, then live frames from the socket's
bounded outbox. A sender, a receiver, an expiry watcher, an access watcher and the outbox's
overflow signal run side by side: the first to finish cancels the others, and `finally` always
unsubscribes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.db import servers as servers_db
from api.db import users as users_db
from api.db.errors import DatabaseUnavailable
from api.db.pool import Pool, connection
from api.settings import ApiSettings
from schemas.frontend_wire import (
    AuthFrame,
    AuthRequiredFrame,
    AuthSuccessFrame,
    CloseCode,
    CoalescedFrame,
    ErrorFrame,
    HistoryEndFrame,
    HistoryLostFrame,
    PongFrame,
    Position,
    encode,
)
from schemas.topics import server_key

from . import db
from .channels import Channel
from .errors import LiveError
from .frames import RateState, history_log_text, history_metrics_text
from .hub import TP, Record, Subscriber
from .outbox import Outbox
from .service import LiveService
from .socket import Auth, Close, Disconnected, SocketSession, run_first_done

log = logging.getLogger(__name__)

Kind = Literal["metrics", "logs"]


class LiveSession(SocketSession):
    def __init__(
        self,
        websocket: WebSocket,
        kind: Kind,
        server_id: str,
        service: LiveService,
        pool: Pool,
        api_settings: ApiSettings,
    ) -> None:
        super().__init__(websocket, service, pool, api_settings)
        self.kind = kind
        self.raw_server_id = server_id
        self.channel: Channel = service.channels.metrics if kind == "metrics" else service.channels.logs
        self._overflow = asyncio.Event()
        limit = self.settings.metrics_queue_frames if kind == "metrics" else self.settings.logs_queue_frames
        self.outbox = Outbox(limit, "coalesce" if kind == "metrics" else "close", self._overflow.set)
        self._subscribers: list[Subscriber] = []

    # --- the whole session -------------------------------------------------------------------

    async def run(self) -> None:
        await self.ws.accept()
        try:
            auth = await self._authenticate()
            await self._start(auth)
            await self._pump()
        except Close as close:
            await self._close(close.code, close.message)
        except LiveError as exc:
            await self._close(exc.code, str(exc))
        except (Disconnected, WebSocketDisconnect):
            pass
        except Exception:  # the socket's last line: a bug still closes it with a code
            log.exception("live session failed")
            await self._close(CloseCode.UNAVAILABLE, "internal error, reconnect later")
        finally:
            for sub in self._subscribers:
                self.service.hub.unsubscribe(sub)
            self._subscribers.clear()

    async def _authenticate(self) -> Auth:
        frame, claims = await self._read_auth()
        try:
            server_id = uuid.UUID(self.raw_server_id)
        except ValueError as exc:
            raise Close(CloseCode.NOT_FOUND, "server not found") from exc
        self.server_id = server_id
        try:
            await self._check_access(claims.subject)
        except DatabaseUnavailable as exc:
            raise Close(CloseCode.UNAVAILABLE, "database unavailable, reconnect later") from exc
        self._check_request(frame)
        auth = Auth(claims.subject, claims.expires_at, frame)
        self._auth = auth
        return auth

    async def _check_access(self, user_id: uuid.UUID) -> None:
        """Close unless the user is active and may see the server (DatabaseUnavailable passes)."""
        async with connection(self.pool) as conn:
            user = await users_db.get_user(conn, user_id)
            role = await servers_db.server_role(conn, user_id, self.server_id)
        if user is None or not user["is_active"]:
            raise Close(CloseCode.INVALID_TOKEN, "user not found or inactive")
        if role is None:
            # One answer for "no such server" and "not yours": a stranger learns nothing.
            raise Close(CloseCode.NOT_FOUND, "server not found")

    def _check_request(self, frame: AuthFrame) -> None:
        """Refuse a history request above the limits before anything is sent."""
        s = self.settings
        window = s.metrics_window_seconds if frame.window_seconds is None else frame.window_seconds
        if window > s.metrics_max_window_seconds:
            raise Close(CloseCode.BAD_REQUEST, f"window_seconds above {s.metrics_max_window_seconds}")
        if self.kind == "metrics" and frame.resolution == "raw" and window > s.raw_max_window_seconds:
            raise Close(
                CloseCode.BAD_REQUEST,
                f"a raw window above {s.raw_max_window_seconds} seconds needs resolution 1m, 5m or 1h",
            )
        lines = s.log_lines if frame.lines is None else frame.lines
        if lines > s.max_log_lines:
            raise Close(CloseCode.BAD_REQUEST, f"lines above {s.max_log_lines}")

    # --- history, seam, catch-up -----------------------------------------------------------------

    async def _start(self, auth: Auth) -> None:
        await self.service.wait_ready(self.settings.kafka_timeout_seconds)
        key = server_key(self.server_id)
        tp = await self.service.partition_of(self.channel.topic, key)
        await self._send(
            encode(AuthSuccessFrame(server_id=self.server_id, channel=self.kind, expires_at=auth.expires_at))
        )
        rates = RateState(exclude=self.settings.network_total_exclude)
        frame = auth.frame
        from_offset: int | None = None
        first = end = 0
        if frame.resume is not None:
            first, end = await self._bounds(tp, frame.resume.offset + 1)
            from_offset, reason = self._resume_offset(frame.resume, tp, first, end)
            if from_offset is None:
                # Cannot resume: say so, then a fresh history as on a first connect.
                await self._send(
                    encode(HistoryLostFrame(requested=frame.resume, position=None, reason=reason))
                )
        if from_offset is None:
            last = await self._history(tp, frame, rates)
            first, end = await self._bounds(tp, None if last is None else last + 1)
            # Nothing of this partition persisted yet: the stream starts at its first offset.
            from_offset = first if last is None else last + 1
            if from_offset < first or end - from_offset > self.settings.max_catchup_messages:
                # Persistence is further behind than the stream can be replayed (or Kafka's
                # retention passed it): say so, then continue from what can be streamed.
                resume_at = max(first, end - self.settings.max_catchup_messages)
                await self._send(
                    encode(
                        HistoryLostFrame(
                            requested=Position(partition=tp.partition, offset=from_offset - 1),
                            position=Position(partition=tp.partition, offset=resume_at - 1),
                            reason="the span between history and live is no longer available: refetch it",
                        )
                    )
                )
                from_offset = resume_at
        # Alerts are live only: from the alerts partition's current end.
        alerts_tp = await self.service.partition_of(self.service.channels.alerts.topic, key)
        alerts_span = self.service.hub.span(alerts_tp)
        alerts_end = alerts_span[1] if alerts_span else (await self.service.reader.bounds(alerts_tp))[1]
        hub = self.service.hub
        # From here on, live frames wait in the outbox until the catch-up below has been sent.
        subscription = hub.subscribe(self.channel, tp, key, from_offset, self.outbox, end=end)
        self._subscribers.append(subscription.subscriber)
        alert_sub = hub.subscribe(
            self.service.channels.alerts, alerts_tp, key, alerts_end, self.outbox, end=alerts_end
        )
        self._subscribers.append(alert_sub.subscriber)
        # The seam: history (if any) is complete up to here; the stream continues after it.
        seam = Position(partition=tp.partition, offset=from_offset - 1)
        await self._send(encode(HistoryEndFrame(position=seam)))
        # The catch-up: the Kafka span before the hub's window, then the window's messages.
        records: list[Record] = []
        if subscription.replay is not None:
            start, stop = subscription.replay
            records = await self.service.reader.replay(tp, key, start, stop)
        records.extend(subscription.backlog)
        for record in records:
            text = self._build(record, tp, rates)
            if text is not None:
                await self._send(text)

    def _resume_offset(self, resume: Position, tp: TP, first: int, end: int) -> tuple[int | None, str]:
        """Where a resume continues, or None and the reason it cannot."""
        start = resume.offset + 1
        if resume.partition != tp.partition:
            return None, "the position is of another partition"
        if start < first:
            return None, "the stream no longer holds that position (retention)"
        if start > end:
            return None, "the position is ahead of the stream"
        if end - start > self.settings.max_catchup_messages:
            return None, "the position is too far behind to resume"
        return start, ""

    async def _bounds(self, tp: TP, from_offset: int | None) -> tuple[int, int]:
        """The partition's first retained offset and its end. While the hub reads the partition
        and `from_offset` lies within its window, the hub answers without a Kafka round trip
        (its window start stands in for the first offset: everything after it is at hand)."""
        span = self.service.hub.span(tp)
        if span is not None and from_offset is not None and from_offset >= span[0]:
            return span
        return await self.service.reader.bounds(tp)

    async def _history(self, tp: TP, frame: AuthFrame, rates: RateState) -> int | None:
        """Send the database history; return the offset it is complete up to (None: nothing
        of this partition is persisted yet)."""
        s = self.settings
        if self.kind == "metrics":
            window = s.metrics_window_seconds if frame.window_seconds is None else frame.window_seconds
            since = datetime.now(UTC) - timedelta(seconds=window)
            mh = await db.metrics_history(
                self.pool,
                self.server_id,
                tp,
                since,
                s.max_history_frames,
                frame.resolution,
            )
            for row in mh.rows:
                await self._send(history_metrics_text(row, rates, frame.resolution))
            last = mh.last_offset
        else:
            lines = s.log_lines if frame.lines is None else frame.lines
            lh = await db.logs_history(self.pool, self.server_id, tp, lines)
            for lrow in lh.rows:
                await self._send(history_log_text(lrow))
            last = lh.last_offset
        return last

    def _build(self, record: Record, tp: TP, rates: RateState) -> str | None:
        build = self.channel.build
        if record.value is None or build is None:
            return None
        try:
            return build(record.value, rates, tp.partition, record.offset)
        except ValidationError:
            log.warning("undecodable %s message at %s:%d", tp.topic, tp.partition, record.offset)
            return None

    # --- live --------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        await run_first_done(
            [
                asyncio.create_task(self._sender(), name="live-sender"),
                asyncio.create_task(self._receiver(), name="live-receiver"),
                asyncio.create_task(self._expiry(), name="live-expiry"),
                asyncio.create_task(self._access_watch(), name="live-access"),
                asyncio.create_task(self._overflow_watch(), name="live-overflow"),
            ]
        )

    async def _sender(self) -> None:
        while True:
            text, skipped = await self.outbox.get()
            if skipped:
                await self._send(encode(CoalescedFrame(skipped=skipped)))
            await self._send(text)

    async def _overflow_watch(self) -> None:
        await self._overflow.wait()
        raise Close(
            CloseCode.SLOW_CONSUMER, "slow consumer: the socket's queue overflowed; reconnect with resume"
        )

    def _reply(self, frame: ErrorFrame | PongFrame | AuthRequiredFrame) -> None:
        self.outbox.push(encode(frame), droppable=False)
