"""The agent's one error root. `retriable` says whether reconnecting may help."""

from __future__ import annotations


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
