"""One agent's socket to ingest: authenticate, send spooled frames, take acks, answer commands.

Delivery: a frame is spooled (on disk) before it is sent and leaves the spool only when ingest
acknowledges its `seq`, which ingest does after Kafka confirmed it. So a frame is either
acknowledged or sent again after the next connect: at-least-once from the agent, exactly-once in
the database (ingest and persistence are idempotent on the sample's natural key).

Ordering and pacing: after a (re)connect, the frames spooled before it (the backlog) are replayed
in seq order, with their original timestamps, at `replay_rate_per_second` and never more than
`max_in_flight` unacknowledged at once; frames sampled meanwhile (live) go out at once, so
catch-up never delays live data nor floods the server.

Liveness: the websocket's own ping/pong, an application `ping` every heartbeat interval, and a
deadline on the oldest unacknowledged frame; any of them failing closes the socket and the agent
reconnects with exponential backoff and full jitter. A refused key (error `invalid_key`, or close
1008) stops the agent with the reason: retrying the same key cannot help. So does close 4000
(superseded): a newer socket of the same server is the agent now, and fighting it helps no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .commands import CommandPolicy, DockerActions, run_command
from .errors import TIMEOUTS, AuthRejected, ConfigError, ConnectionLost, Superseded
from .pacing import Backoff, TokenBucket
from .spool import Spool
from .wire import (
    CLOSE_POLICY,
    CLOSE_SUPERSEDED,
    Ack,
    AuthFrame,
    AuthSuccess,
    Command,
    CommandResponseFrame,
    DockerCommand,
    DockerResponseFrame,
    ErrorReply,
    PingFrame,
    Pong,
    decode_server_frame,
)

log = logging.getLogger(__name__)
_HANDSHAKE_ERRORS: tuple[type[BaseException], ...] = (InvalidHandshake, *TIMEOUTS)
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, InvalidHandshake, *TIMEOUTS)


@dataclass(frozen=True)
class ConnectionConfig:
    url: str
    api_key: str
    connect_timeout: float = 10.0
    ack_timeout: float = 30.0
    heartbeat_interval: float = 20.0
    heartbeat_timeout: float = 20.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    replay_rate: float = 20.0
    max_in_flight: int = 100
    max_frame_bytes: int = 1 << 20
    ssl_context: ssl.SSLContext | None = None


@dataclass
class ConnectionStats:
    connects: int = 0
    sent: int = 0
    acked: int = 0
    replayed: int = 0
    resent: int = 0
    rejected: int = 0  # frames ingest refused as invalid: dropped from the spool, logged
    commands: int = 0
    last_error: str | None = None
    connected: bool = False
    server_id: str | None = None
    last_disconnect: float | None = None
    durations: list[float] = field(default_factory=list)


class _Session:
    """State of one connected socket; a new one per connect."""

    def __init__(self, ws: ClientConnection, backlog_upto: int) -> None:
        self.ws = ws
        self.backlog_upto = backlog_upto
        self.in_flight: dict[int, float] = {}
        self.window_open = asyncio.Event()
        self.window_open.set()
        # Live frames (seq, bytes) and resends (seq, None), sent in arrival order.
        self.live: asyncio.Queue[tuple[int, bytes | None]] = asyncio.Queue()
        self.last_received = time.monotonic()
        self.send_lock = asyncio.Lock()
        self.commands: set[asyncio.Task[None]] = set()


class AgentConnection:
    def __init__(
        self,
        config: ConnectionConfig,
        spool: Spool,
        *,
        policy: CommandPolicy | None = None,
        docker: DockerActions | None = None,
        backoff: Backoff | None = None,
        name: str = "agent",
    ) -> None:
        self.config = config
        self.spool = spool
        self.policy = policy or CommandPolicy(False, (), 30.0, 64 * 1024)
        self.docker = docker or DockerActions(enabled=False)
        self.backoff = backoff or Backoff(config.backoff_initial, config.backoff_max)
        self.stats = ConnectionStats()
        self.name = name
        self._session: _Session | None = None
        self._commands = asyncio.Semaphore(1)  # one command at a time per agent

    # -- called by the sampler --------------------------------------------------------------

    def notify_live(self, seq: int, frame: bytes) -> None:
        """A frame was just spooled: send it now if connected (else it waits in the spool)."""
        session = self._session
        if session is not None and seq > session.backlog_upto:
            session.live.put_nowait((seq, frame))

    # -- the reconnect loop ----------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Connect, serve, reconnect with backoff, until `stop` is set. AuthRejected and Superseded
        propagate: retrying cannot help."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self._serve_once(stop)
            except ConnectionLost as exc:
                self.stats.last_error = str(exc)
                log.info("%s: connection lost: %s", self.name, exc)
            except _CONNECT_ERRORS as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.info("%s: cannot connect to %s: %s", self.name, self.config.url, self.stats.last_error)
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("%s: reconnecting in %.1f s", self.name, delay)
            with contextlib.suppress(*TIMEOUTS):
                await asyncio.wait_for(stop.wait(), delay)

    async def check_key(self) -> str:
        """Connect, authenticate and close: the server id the key belongs to. AuthRejected if the
        server refuses it, ConnectionLost (or OSError) if it cannot be reached."""
        try:
            ws = await connect(
                self.config.url,
                open_timeout=self.config.connect_timeout,
                ssl=self.config.ssl_context if self.config.url.startswith("wss:") else None,
            )
        except InvalidURI as exc:
            raise ConfigError(f"invalid server URL: {exc}") from exc
        except _HANDSHAKE_ERRORS as exc:
            raise ConnectionLost(f"cannot connect to {self.config.url}: {exc}") from exc
        try:
            return await self._authenticate(ws)
        finally:
            await ws.close()

    async def _serve_once(self, stop: asyncio.Event) -> None:
        cfg = self.config
        try:
            ws = await connect(
                cfg.url,
                open_timeout=cfg.connect_timeout,
                ping_interval=cfg.heartbeat_interval,
                ping_timeout=cfg.heartbeat_timeout,
                close_timeout=5,
                max_size=cfg.max_frame_bytes,
                ssl=cfg.ssl_context if cfg.url.startswith("wss:") else None,
            )
        except InvalidURI as exc:
            raise ConfigError(f"invalid server URL: {exc}") from exc
        try:
            server_id = await self._authenticate(ws)
            self.stats.connects += 1
            self.stats.connected = True
            self.stats.server_id = server_id
            log.info("%s: connected to %s as server %s", self.name, cfg.url, server_id)
            # Frames spooled up to now are the backlog (replayed, paced); later ones are live. Until
            # the snapshot is read, nothing counts as live: a frame spooled meanwhile is in it.
            session = _Session(ws, backlog_upto=sys.maxsize)
            self._session = session
            session.backlog_upto = await self.spool.last_seq()
            await self._run_session(session, stop)
        finally:
            self._session = None
            self.stats.connected = False
            self.stats.last_disconnect = time.monotonic()
            await ws.close()

    async def _authenticate(self, ws: ClientConnection) -> str:
        cfg = self.config
        await ws.send(AuthFrame(api_key=cfg.api_key).to_bytes().decode())
        try:
            raw = await asyncio.wait_for(ws.recv(), cfg.connect_timeout)
        except ConnectionClosed as exc:
            raise _closed(exc, during_auth=True) from exc
        except TIMEOUTS as exc:
            raise ConnectionLost(f"no answer to auth within {cfg.connect_timeout:g} s") from exc
        frame = decode_server_frame(raw)
        if frame is None:
            raise ConnectionLost(f"unexpected answer to auth: {str(raw)[:200]}")
        if isinstance(frame, AuthSuccess):
            return frame.server_id
        if isinstance(frame, ErrorReply):
            if frame.code == "invalid_key" or frame.code is None:
                raise AuthRejected(f"the server refused the API key: {frame.message}")
            raise ConnectionLost(f"auth failed: {frame.message} ({frame.code})")
        raise ConnectionLost(f"unexpected answer to auth: {type(frame).__name__}")

    async def _run_session(self, session: _Session, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._receiver(session), name="receiver"),
            asyncio.create_task(self._live_sender(session), name="live"),
            asyncio.create_task(self._replayer(session), name="replay"),
            asyncio.create_task(self._watchdog(session), name="watchdog"),
            asyncio.create_task(stop.wait(), name="stop"),
        ]
        try:
            # The first task to finish (an error, a close, or stop) ends the session.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise exc
        finally:
            # Commands in progress end with their socket: run_command kills a cancelled process.
            tasks.extend(session.commands)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, session: _Session, data: bytes | str) -> None:
        try:
            async with session.send_lock:
                await session.ws.send(data.decode() if isinstance(data, bytes) else data)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def _send_frame(self, session: _Session, seq: int, frame: bytes) -> None:
        while len(session.in_flight) >= self.config.max_in_flight:
            session.window_open.clear()
            await session.window_open.wait()
        session.in_flight[seq] = time.monotonic()
        await self._send(session, frame)
        self.stats.sent += 1

    async def _live_sender(self, session: _Session) -> None:
        # One queue for live frames and resends, so this task has a single place to wait: a
        # cancellation (the session ending) always lands here and is never swallowed.
        while True:
            seq, frame = await session.live.get()
            if frame is None:  # a resend: the frame is read back from the spool
                rows = await self.spool.pending(after=seq - 1, limit=1)
                if not rows or rows[0][0] != seq:
                    continue  # acknowledged (or dropped) meanwhile
                frame = rows[0][1]
                session.in_flight.pop(seq, None)
                self.stats.resent += 1
            await self._send_frame(session, seq, frame)

    async def _replayer(self, session: _Session) -> None:
        bucket = TokenBucket(self.config.replay_rate, burst=max(1.0, self.config.replay_rate))
        cursor, replayed = 0, 0
        while cursor < session.backlog_upto:
            batch = await self.spool.pending(after=cursor, limit=200)
            batch = [(s, f) for s, f in batch if s <= session.backlog_upto]
            if not batch:
                break
            for seq, frame in batch:
                await _take(bucket)
                await self._send_frame(session, seq, frame)
                cursor = seq
                replayed += 1
        if replayed:
            self.stats.replayed += replayed
            log.info("%s: replayed %d spooled frame(s)", self.name, replayed)
        await asyncio.Event().wait()  # the backlog is done; the session goes on

    async def _receiver(self, session: _Session) -> None:
        while True:
            try:
                raw = await session.ws.recv()
            except ConnectionClosed as exc:
                raise _closed(exc) from exc
            session.last_received = time.monotonic()
            frame = decode_server_frame(raw)
            if frame is None:
                log.warning("%s: ignoring an unknown frame: %s", self.name, str(raw)[:200])
                continue
            if isinstance(frame, Ack):
                await self._acked(session, [frame.seq])
            elif isinstance(frame, Pong):
                pass
            elif isinstance(frame, ErrorReply):
                await self._refused(session, frame)
            elif isinstance(frame, Command):
                self._spawn(session, self._shell(session, frame))
            elif isinstance(frame, DockerCommand):
                self._spawn(session, self._docker(session, frame))
            else:
                log.debug("%s: ignoring %s", self.name, frame)

    async def _acked(self, session: _Session, seqs: list[int]) -> None:
        # The frame is durable in Kafka (ingest acks only then): it may leave the spool.
        await self.spool.ack(seqs)
        for seq in seqs:
            if session.in_flight.pop(seq, None) is not None:
                self.stats.acked += 1
        if self.stats.acked and self.backoff.attempt:
            self.backoff.reset()  # the server is really working again
        if len(session.in_flight) < self.config.max_in_flight:
            session.window_open.set()

    async def _refused(self, session: _Session, frame: ErrorReply) -> None:
        if frame.seq is None:
            log.warning(
                "%s: server error: %s (%s) %s", self.name, frame.message, frame.code, frame.detail or ""
            )
            return
        if frame.code == "retry" or frame.retry:
            session.live.put_nowait((frame.seq, None))  # not durable yet: send it again
            return
        # Refused as invalid: it would be refused again on every replay, so it leaves the spool.
        log.error(
            "%s: frame seq %d refused: %s (%s)",
            self.name,
            frame.seq,
            frame.detail or frame.message,
            frame.code,
        )
        self.stats.rejected += 1
        await self._acked(session, [frame.seq])

    async def _watchdog(self, session: _Session) -> None:
        cfg = self.config
        next_ping = time.monotonic() + cfg.heartbeat_interval
        while True:
            await asyncio.sleep(min(1.0, cfg.heartbeat_interval / 2))
            now = time.monotonic()
            if session.in_flight:
                oldest_seq = min(session.in_flight, key=session.in_flight.__getitem__)
                if now - session.in_flight[oldest_seq] > cfg.ack_timeout:
                    raise ConnectionLost(f"no ack for seq {oldest_seq} within {cfg.ack_timeout:g} s")
            if now - session.last_received > cfg.heartbeat_interval + cfg.heartbeat_timeout:
                raise ConnectionLost(
                    f"nothing received for {now - session.last_received:.0f} s (heartbeat timed out)"
                )
            if now >= next_ping:
                next_ping = now + cfg.heartbeat_interval
                await self._send(session, PingFrame().to_bytes())

    def _spawn(self, session: _Session, coro: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except ConnectionLost as exc:
                log.warning("%s: command answer lost with the connection: %s", self.name, exc)

        task = asyncio.create_task(guarded())
        session.commands.add(task)
        task.add_done_callback(session.commands.discard)

    async def _shell(self, session: _Session, frame: Command) -> None:
        self.stats.commands += 1
        async with self._commands:
            outcome = await run_command(self.policy, frame.command)
        log.info(
            "%s: command %s exit %d in %d ms%s",
            self.name,
            frame.command_id,
            outcome.exit_code,
            outcome.duration_ms,
            f" ({outcome.error})" if outcome.error else "",
        )
        reply = CommandResponseFrame(
            command_id=frame.command_id,
            output=outcome.output,
            exit_code=outcome.exit_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
        )
        await self._send(session, reply.to_bytes())

    async def _docker(self, session: _Session, frame: DockerCommand) -> None:
        self.stats.commands += 1
        async with self._commands:
            outcome = await self.docker.run(frame.action, frame.container_id, frame.tail)
        reply = DockerResponseFrame(
            command_id=frame.command_id,
            success=outcome.success,
            message=outcome.message,
            logs=outcome.logs,
        )
        await self._send(session, reply.to_bytes())


async def _take(bucket: TokenBucket) -> None:
    """Wait for a token (the replay's pace)."""
    while not bucket.try_take():  # noqa: ASYNC110 - waiting on a clock, not on an event
        await asyncio.sleep(bucket.wait_time())


def _closed(exc: ConnectionClosed, *, during_auth: bool = False) -> Exception:
    code = exc.rcvd.code if exc.rcvd is not None else None
    reason = exc.rcvd.reason if exc.rcvd is not None else ""
    if code == CLOSE_POLICY:
        what = "refused the API key" if during_auth else "closed the connection by policy (key revoked?)"
        return AuthRejected(f"the server {what}: {reason or 'close code 1008'}")
    if code == CLOSE_SUPERSEDED:
        return Superseded(f"superseded: another agent connected with this server's key ({reason or code})")
    return ConnectionLost(f"socket closed (code {code}{', ' + reason if reason else ''})")
