"""Connection caps and the request-head deadline, below the ASGI app (uvicorn's protocols).

uvicorn closes a kept-alive connection that idles after an answer, but not one that never sends a
request: a client may open sockets and send nothing (or dribble a header a byte at a time) and
each costs memory until the process runs out. Here, per process:

- at most `max_connections` connections (HTTP and WebSocket together), and at most
  `max_per_address` from one client address: past either, a new connection is closed at once
  (counted), before any byte of it is read;
- a connection must complete a request head within `head_timeout` of opening (and of each
  answer's end, for the next request on a kept-alive connection), or it is closed.

Once a connection has become a WebSocket, the socket's own auth timeout and heartbeat take over
(ingest's `auth_timeout`, the live sockets' `auth_timeout_seconds`); its count is held until it
closes. The address is the peer's (the TCP connection's), never a forwarded header: the cap
protects this process from what connects to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    max_per_address: int
    head_timeout: float


@dataclass(slots=True)
class ConnectionGuard:
    """The counts of one server (one uvicorn process); not thread-safe: the event loop's."""

    limits: ConnectionLimits
    exempt: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    open: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # reason -> connections closed

    def admit(self, address: str) -> bool:
        if self.open >= self.limits.max_connections:
            self.refused["max_connections"] += 1
            return False
        if self.by_address[address] >= self.limits.max_per_address and not self._exempt(address):
            self.refused["max_per_address"] += 1
            return False
        self.open += 1
        self.by_address[address] += 1
        return True

    def _exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.exempt)

    def release(self, address: str) -> None:
        self.open -= 1
        left = self.by_address[address] - 1
        if left > 0:
            self.by_address[address] = left
        else:
            del self.by_address[address]  # idle addresses cost nothing


def _address(client: Any) -> str:
    return str(client[0]) if client else ""


def protocols(guard: ConnectionGuard) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP and WebSocket protocol classes with the guard's caps and deadline, for
    `uvicorn.Config(http=..., ws=...)`."""

    class GuardedWebSocket(WebSocketsSansIOProtocol):
        # Made only by an upgrade: the HTTP connection's count passes to it.
        def connection_lost(self, exc: Exception | None) -> None:
            guard.release(_address(self.client))
            super().connection_lost(exc)

    class GuardedHttp(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _fp_counted = False
        _fp_timer: asyncio.TimerHandle | None = None
        _fp_cycle: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if not guard.admit(_address(self.client)):
                transport.abort()  # type: ignore[attr-defined]
                return
            self._fp_counted = True
            self._fp_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._fp_disarm()
            if self._fp_counted:
                self._fp_counted = False
                guard.release(_address(self.client))
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._fp_timer is not None and self.cycle is not self._fp_cycle:
                self._fp_disarm()  # a request head is complete: the app's time starts

        def handle_websocket_upgrade(self, *event: Any) -> None:  # h11's takes the event
            self._fp_disarm()
            self._fp_counted = False  # the socket protocol releases the count when it closes
            super().handle_websocket_upgrade(*event)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._fp_counted and not self.transport.is_closing():
                self._fp_arm()  # the next request's head, on a kept-alive connection

        def _fp_arm(self) -> None:
            self._fp_disarm()
            self._fp_cycle = self.cycle
            self._fp_timer = self.loop.call_later(guard.limits.head_timeout, self._fp_expired)

        def _fp_disarm(self) -> None:
            if self._fp_timer is not None:
                self._fp_timer.cancel()
                self._fp_timer = None

        def _fp_expired(self) -> None:
            self._fp_timer = None
            if self.cycle is self._fp_cycle and (self.cycle is None or self.cycle.response_complete):
                guard.refused["head_timeout"] += 1
                self.transport.close()

    return GuardedHttp, GuardedWebSocket
