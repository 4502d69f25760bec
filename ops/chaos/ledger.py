"""What every simulated agent sampled, what ingest acknowledged, and what every socket received.

Every sample is numbered: sample n of an agent carries the time `base + n` seconds (whole
seconds, so the legacy dialect, which has no seq, is numbered the same way), and that time is
its natural key in the database, so the stored row, the Kafka record and the live frame all name
their sample.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class AgentLedger:
    name: str
    dialect: str  # seed or legacy
    server_id: uuid.UUID
    base: datetime  # sample n has the time base + n seconds
    sampled_at: list[float] = field(default_factory=list)  # monotonic, index n - 1
    acked: dict[int, float] = field(default_factory=dict)  # n -> monotonic time of its (first) ack
    acks: int = 0  # every ack received (a resent sample may be acked twice)
    connects: int = 0
    rejected: int = 0  # samples ingest refused as invalid (there should be none)
    dropped: int = 0  # samples the agent's spool dropped when full (there should be none)
    stopped: str | None = None  # why the agent stopped before the end, if it did
    _acked_upto: int = 0

    def time_of(self, n: int) -> datetime:
        return self.base + timedelta(seconds=n)

    def number_of(self, t: datetime) -> int | None:
        seconds = (t - self.base).total_seconds()
        n = round(seconds)
        if abs(seconds - n) > 1e-3 or not 1 <= n <= len(self.sampled_at):
            return None
        return n

    def sampled(self) -> int:
        self.sampled_at.append(time.monotonic())
        return len(self.sampled_at)

    def ack(self, n: int) -> None:
        self.acks += 1
        self.acked.setdefault(n, time.monotonic())

    def acked_upto(self) -> int:
        """The largest n such that samples 1..n are all acknowledged."""
        while self._acked_upto + 1 in self.acked:
            self._acked_upto += 1
        return self._acked_upto

    def sampled_before(self, moment: float) -> int:
        """How many samples were taken before the monotonic `moment`."""
        lo, hi = 0, len(self.sampled_at)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.sampled_at[mid] < moment:
                lo = mid + 1
            else:
                hi = mid
        return lo


@dataclass
class SocketLedger:
    """One browser-style socket on one server's metrics, across its reconnects."""

    name: str
    agent: AgentLedger
    received: Counter[int] = field(default_factory=Counter)  # n -> frames received
    positions: Counter[tuple[int, int]] = field(default_factory=Counter)  # (partition, offset) -> frames
    unknown: int = 0  # metrics frames whose time is no sample of the agent
    connects: int = 0
    resumes: int = 0
    history_lost: list[str] = field(default_factory=list)
    coalesced: int = 0  # frames the server said it skipped (slow consumer)
    closes: Counter[str] = field(default_factory=Counter)  # close code -> times
    _upto: int = 0

    def got(self, n: int | None, position: tuple[int, int] | None) -> None:
        if n is None:
            self.unknown += 1
            return
        self.received[n] += 1
        if position is not None:
            self.positions[position] += 1

    def delivered_upto(self) -> int:
        while self.received.get(self._upto + 1):
            self._upto += 1
        return self._upto
