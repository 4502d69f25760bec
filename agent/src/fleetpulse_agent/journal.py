"""Follow the systemd journal of the units an operator names (`journal_units`).

`journalctl -o json -f -n 0 -u UNIT...` runs as a child process; each JSON line becomes a
`LogEntry` (priority mapped to a level, the journal's own timestamp, `journal:<unit>` as source).
As with files, history is not re-sent at start (`-n 0`). If journalctl exits (or is restarted by
us after an error), it is started again after the last entry seen (`--after-cursor`), so a restart
neither repeats nor skips entries. Lines past the rate limit, or past the buffer while the sender
is slow, are dropped and counted, and the count is logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from datetime import datetime, timezone
from typing import Any

from .pacing import Backoff, TokenBucket
from .wire import LogEntry, utc_now

log = logging.getLogger(__name__)

# syslog priorities (journald's PRIORITY field) as the server's levels.
PRIORITY_LEVELS = {
    "0": "CRITICAL",
    "1": "CRITICAL",
    "2": "CRITICAL",
    "3": "ERROR",
    "4": "WARNING",
    "5": "INFO",
    "6": "INFO",
    "7": "DEBUG",
}
MAX_BUFFERED = 10_000  # entries read but not yet polled


def journal_argv(command: str, units: list[str], after_cursor: str | None) -> list[str]:
    argv = [command, "--output=json", "--follow", "--no-pager", "--quiet"]
    argv += [f"--after-cursor={after_cursor}"] if after_cursor else ["--lines=0"]
    for unit in units:
        argv += ["--unit", unit]
    return argv


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):  # non-UTF-8: byte values
        return bytes(b & 0xFF for b in value).decode("utf-8", "replace")
    return None


def parse_entry(line: bytes, max_line_bytes: int) -> tuple[LogEntry, str | None] | None:
    """One journal JSON line as an entry and its cursor; None for a line that is not an entry."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message = _text(data.get("MESSAGE"))
    if message is None or not message.strip():
        return None
    message = message.encode("utf-8", "replace")[:max_line_bytes].decode("utf-8", "ignore").rstrip("\r\n")
    message = message.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    level = PRIORITY_LEVELS.get(str(data.get("PRIORITY", "6")), "INFO")
    when: datetime = utc_now()
    stamp = data.get("__REALTIME_TIMESTAMP")
    if isinstance(stamp, str) and stamp.isdigit():
        when = datetime.fromtimestamp(int(stamp) / 1e6, timezone.utc)
    unit = _text(data.get("_SYSTEMD_UNIT")) or _text(data.get("SYSLOG_IDENTIFIER")) or "journal"
    cursor = data.get("__CURSOR")
    entry = LogEntry(level=level, message=message, timestamp=when, source=f"journal:{unit}"[:256])
    return entry, cursor if isinstance(cursor, str) else None


class JournalReader:
    """`start()` launches the follower; `poll()` takes what it read; `close()` stops it (twice is safe)."""

    def __init__(
        self,
        units: list[str],
        bucket: TokenBucket,
        max_line_bytes: int,
        *,
        command: str = "journalctl",
        backoff: Backoff | None = None,
    ) -> None:
        self.units = list(units)
        self.command = command
        self._bucket = bucket
        self._max_line = max_line_bytes
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._buffer: collections.deque[LogEntry] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.cursor: str | None = None
        self.dropped = 0
        self._dropped_reported = 0
        self.starts = 0

    async def start(self) -> None:
        if self.units and self._task is None:
            self._task = asyncio.ensure_future(self._follow())

    def poll(self) -> list[LogEntry]:
        """Every entry read since the last poll (thread-safe: the deque is the only shared state)."""
        out = []
        while self._buffer:
            out.append(self._buffer.popleft())
        if self.dropped > self._dropped_reported:
            log.warning("journal: dropped %d line(s) so far (rate limit or slow sender)", self.dropped)
            self._dropped_reported = self.dropped
        return out

    async def _follow(self) -> None:
        while True:
            argv = journal_argv(self.command, self.units, self.cursor)
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    limit=max(self._max_line * 8, 1 << 20),  # one journal line may carry many fields
                )
            except OSError as exc:
                log.warning("journal: cannot run %s (%s): journal_units are not collected", self.command, exc)
                return
            self.starts += 1
            await self._read(self._proc)
            code = await self._proc.wait()
            err = b""
            if self._proc.stderr is not None:
                err = await self._proc.stderr.read()
            delay = self._backoff.next_delay()
            log.warning(
                "journal: %s exited with %s%s; following again in %.1f s",
                self.command,
                code,
                f" ({err.decode(errors='replace').strip()[:300]})" if err.strip() else "",
                delay,
            )
            await asyncio.sleep(delay)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        if proc.stdout is None:
            return
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over the stream's limit: skip to its end
                self.dropped += 1
                continue
            if not line:
                return
            parsed = parse_entry(line, self._max_line)
            if parsed is None:
                continue
            entry, cursor = parsed
            self.cursor = cursor or self.cursor
            self._backoff.reset()
            if len(self._buffer) >= MAX_BUFFERED or not self._bucket.try_take():
                self.dropped += 1
                continue
            self._buffer.append(entry)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
