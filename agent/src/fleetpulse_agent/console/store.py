"""Where `fleetpulse login` keeps the session: `$XDG_CONFIG_HOME/fleetpulse/session.json`
(`~/.config/fleetpulse/` when unset), the folder 0700 and the file 0600, written atomically.

It holds the API's URL, the account's email and the access and refresh tokens, never the
password. A refreshed token pair replaces the old one at once (the server rotates refresh tokens:
the old one no longer works).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SESSION_FILE = "session.json"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "fleetpulse"


class SessionStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / SESSION_FILE

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("api_url") else None

    def save(self, session: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        # Written to a private temporary file, then renamed: never readable by others, never half-written.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".session-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(dict(session), f, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            _unlink(tmp)
            raise

    def update_tokens(self, token: Mapping[str, Any]) -> None:
        session = self.load()
        if session is None:
            return
        session["access_token"] = token["access_token"]
        if token.get("refresh_token"):
            session["refresh_token"] = token["refresh_token"]
        self.save(session)

    def clear(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
