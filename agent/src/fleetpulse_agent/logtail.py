"""Tail the log files an operator names, across rotation, rate limited.

Each file is read from its end when the agent starts (history is not re-sent). Rotation is noticed
by the path's inode changing (rename + create) or its size shrinking (copytruncate): the rest of
the old file is read first, then the new file from its start. Lines over the rate limit are
dropped and counted; the count is logged, so nothing vanishes silently.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .pacing import TokenBucket
from .wire import LogEntry, utc_now

log = logging.getLogger(__name__)

_LEVEL = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERR|ERROR|CRIT|CRITICAL|FATAL|ALERT|EMERG)\b")


def guess_level(line: str) -> str:
    match = _LEVEL.search(line[:200])
    return match.group(1) if match else "INFO"


@dataclass
class _Followed:
    path: Path
    handle: BinaryIO | None = None
    inode: int | None = None
    position: int = 0
    partial: bytes = b""


class LogTailer:
    def __init__(self, paths: list[Path], bucket: TokenBucket, max_line_bytes: int) -> None:
        self._files = [_Followed(p) for p in paths]
        self._bucket = bucket
        self._max_line = max_line_bytes
        self.dropped = 0
        self._dropped_reported = 0
        for f in self._files:
            self._open(f, from_end=True)

    def _open(self, f: _Followed, *, from_end: bool) -> None:
        try:
            handle = f.path.open("rb")
        except OSError:
            f.handle, f.inode = None, None  # not there (yet): try again at the next poll
            return
        st = os.fstat(handle.fileno())
        f.handle, f.inode = handle, st.st_ino
        f.position = st.st_size if from_end else 0
        f.partial = b""
        handle.seek(f.position)

    def poll(self) -> list[LogEntry]:
        """Every complete new line of every file since the last poll (blocking: run on a thread)."""
        out: list[LogEntry] = []
        for f in self._files:
            if f.handle is None:
                self._open(f, from_end=False)  # created after start: read it all
                if f.handle is None:
                    continue
            out.extend(self._read(f))
            try:
                st = f.path.stat()
            except OSError:
                continue  # rotated away and not recreated yet: keep the old handle
            if st.st_ino != f.inode or st.st_size < f.position:
                # Rotated (new inode) or truncated: the old handle was drained above, now the new file.
                f.handle.close()
                self._open(f, from_end=False)
                out.extend(self._read(f))
        if self.dropped > self._dropped_reported:
            log.warning(
                "log rate limit: dropped %d line(s) so far (%d since the last report)",
                self.dropped,
                self.dropped - self._dropped_reported,
            )
            self._dropped_reported = self.dropped
        return out

    def _read(self, f: _Followed) -> list[LogEntry]:
        assert f.handle is not None
        data = f.handle.read()
        if not data:
            return []
        f.position += len(data)
        data = f.partial + data
        lines = data.split(b"\n")
        f.partial = lines.pop()  # an incomplete last line waits for its newline
        if len(f.partial) > self._max_line:
            lines.append(f.partial)
            f.partial = b""
        now = utc_now()
        out = []
        for raw in lines:
            # NUL cannot be stored (PostgreSQL text): shown as the replacement character instead.
            text = raw[: self._max_line].decode("utf-8", "replace").rstrip("\r").replace("\x00", "\ufffd")
            if not text.strip():
                continue
            if not self._bucket.try_take():
                self.dropped += 1
                continue
            entry = LogEntry(level=guess_level(text), message=text, timestamp=now, source=str(f.path)[-256:])
            out.append(entry)
        return out

    def close(self) -> None:
        for f in self._files:
            if f.handle is not None:
                f.handle.close()
                f.handle = None
