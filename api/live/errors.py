"""The live sockets' error root; each error knows the close code it ends a socket with."""

from __future__ import annotations

from schemas.frontend_wire import CloseCode


class LiveError(Exception):
    retriable = False
    code = CloseCode.BAD_REQUEST


class Unavailable(LiveError):
    """Kafka or the database did not answer in time."""

    retriable = True
    code = CloseCode.UNAVAILABLE
