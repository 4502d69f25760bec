"""The one-line agent install: the command shown with a new API key, and the URLs it needs.

`curl -fsSL <public_url>/install.sh | sudo sh -s -- --key <key>`: the script (served by
`routes/install.py`) carries the API's URL and the agent socket's URL, so the line needs only the key.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit, urlunsplit

AGENT_SOCKET_PATH = "/api/v1/agents/ws"


def check_public_url(value: str) -> str:
    """An http(s) base URL without query or fragment, without its trailing slash; ValueError otherwise."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"must have no query or fragment, got {value!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def agent_socket_url(public_url: str, agent_public_url: str | None) -> str:
    """Where an installed agent connects: the explicit setting, else the agent socket beside the API."""
    if agent_public_url is not None:
        parts = urlsplit(agent_public_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        path = parts.path if parts.path not in ("", "/") else AGENT_SOCKET_PATH
        return urlunsplit((scheme, parts.netloc, path, "", ""))
    parts = urlsplit(public_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + AGENT_SOCKET_PATH, "", ""))


def install_command(public_url: str, key: str) -> str:
    """The exact line an operator pastes on a new server (as root, or through sudo)."""
    script = f"{public_url.rstrip('/')}/install.sh"
    return f"curl -fsSL {shlex.quote(script)} | sudo sh -s -- --key {shlex.quote(key)}"
