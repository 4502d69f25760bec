"""The agent's one error root. `retriable` says whether reconnecting may help."""

from __future__ import annotations

import asyncio

# What a timeout raises: `asyncio.wait_for` raises asyncio.TimeoutError, which is the built-in
# TimeoutError only from Python 3.11 on (`except TIMEOUTS:` catches both on every version).
TIMEOUTS: tuple[type[BaseException], ...] = (asyncio.TimeoutError, TimeoutError)


class AgentError(Exception):
    retriable: bool = True


class ConfigError(AgentError):
    """The agent's configuration is unusable; the message names the setting."""

    retriable = False


class AuthRejected(AgentError):
    """The server refused the API key: retrying with the same key cannot help."""

    retriable = False


class Superseded(AgentError):
    """A newer socket of the same server took over (close 4000): this agent is the stale one."""

    retriable = False


class ConnectionLost(AgentError):
    """The socket closed, timed out or stopped answering; reconnect with backoff."""


class SpoolError(AgentError):
    """The on-disk spool could not be read or written."""

    retriable = False


class CommandRefused(AgentError):
    """A command the operator did not enable or allowlist."""

    retriable = False


class WireError(AgentError):
    """A frame this agent built would be refused by the server (a bug, or a value out of range)."""

    retriable = False
