"""Backtest: replay a rule over stored history with the live engine's own evaluation.

Importable without faust (the API calls it). It reads TimescaleDB through any connection with
asyncpg's `fetch(query, *args)` (an asyncpg connection or pool), rebuilds the canonical samples
(disks and interface counters included) and feeds them, in time order, to `evaluation`: the same
data gives the same episodes, with the same ids, as the live engine produced.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from schemas.alerts import AlertEvent, AlertRule
from schemas.canonical import DiskSample, InterfaceSample, MetricSample

from .errors import BacktestTooLarge
from .evaluation import RuleSpec, State, evaluate_sample, evaluate_silence, new_state, spec_from_rule


class Fetcher(Protocol):
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


class Episode(BaseModel):
    """One episode the rule would have produced."""

    episode_id: uuid.UUID
    server_id: uuid.UUID
    subject: str | None
    started_at: datetime
    fired_at: datetime
    fired_value: float | None
    resolved_at: datetime | None  # None: still firing at the end of the range
    resolved_value: float | None


def replay(
    spec: RuleSpec,
    samples: Iterable[MetricSample],
    *,
    until: datetime | None = None,
    owner_id: uuid.UUID | None = None,
) -> list[AlertEvent]:
    """Evaluate `samples` (of any servers, in time order per server) with fresh state.

    `until`: for no-data rules, the instant the replay ends (a silence running up to it fires)."""
    states: dict[uuid.UUID, State] = defaultdict(new_state)
    events: list[AlertEvent] = []
    ordered = sorted(samples, key=lambda s: s.received_at if spec.is_no_data else s.time)
    for sample in ordered:
        events.extend(evaluate_sample(spec, sample, states[sample.server_id], owner_id))
    if until is not None and spec.is_no_data:
        for server_id, state in states.items():
            events.extend(evaluate_silence(spec, server_id, until, state, owner_id))
    return events


def episodes(events: Iterable[AlertEvent]) -> list[Episode]:
    """Fold firing/resolved events into episodes, in order of their start."""
    found: dict[uuid.UUID, Episode] = {}
    for event in events:
        if event.state == "firing":
            found[event.episode_id] = Episode(
                episode_id=event.episode_id,
                server_id=event.server_id,
                subject=event.subject,
                started_at=event.started_at,
                fired_at=event.time,
                fired_value=event.value,
                resolved_at=None,
                resolved_value=None,
            )
        elif event.episode_id in found:
            found[event.episode_id] = found[event.episode_id].model_copy(
                update={"resolved_at": event.time, "resolved_value": event.value}
            )
    return sorted(found.values(), key=lambda e: (e.started_at, str(e.server_id), e.subject or ""))


async def load_samples(
    db: Fetcher,
    server_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    *,
    max_samples: int,
) -> list[MetricSample]:
    """The stored samples of these servers in [start, end), disks and interfaces included."""
    servers = list(server_ids)
    count = await db.fetch(
        "SELECT count(*) FROM metrics WHERE server_id = ANY($1) AND time >= $2 AND time < $3",
        servers,
        start,
        end,
    )
    if count[0][0] > max_samples:
        raise BacktestTooLarge(
            f"the range holds {count[0][0]} samples, more than the limit of {max_samples}: narrow it"
        )
    rows = await db.fetch(
        """SELECT server_id, time, received_at, cpu_percent, memory_percent, memory_total_bytes,
                  memory_used_bytes, load1, load5, load15, uptime_seconds, cpu_cores
             FROM metrics WHERE server_id = ANY($1) AND time >= $2 AND time < $3
            ORDER BY server_id, time""",
        servers,
        start,
        end,
    )
    disks: dict[tuple[uuid.UUID, datetime], list[DiskSample]] = defaultdict(list)
    for d in await db.fetch(
        """SELECT server_id, time, mount, total_bytes, used_bytes, free_bytes, percent
             FROM metric_disks WHERE server_id = ANY($1) AND time >= $2 AND time < $3
            ORDER BY server_id, time, mount""",
        servers,
        start,
        end,
    ):
        disks[(d[0], d[1])].append(
            DiskSample(mount=d[2], total_bytes=d[3], used_bytes=d[4], free_bytes=d[5], percent=d[6])
        )
    interfaces: dict[tuple[uuid.UUID, datetime], list[InterfaceSample]] = defaultdict(list)
    for i in await db.fetch(
        """SELECT server_id, time, interface, bytes_sent, bytes_recv, packets_sent, packets_recv,
                  errors_in, errors_out
             FROM metric_interfaces WHERE server_id = ANY($1) AND time >= $2 AND time < $3
            ORDER BY server_id, time, interface""",
        servers,
        start,
        end,
    ):
        interfaces[(i[0], i[1])].append(
            InterfaceSample(
                interface=i[2],
                bytes_sent=i[3],
                bytes_recv=i[4],
                packets_sent=i[5],
                packets_recv=i[6],
                errors_in=i[7],
                errors_out=i[8],
            )
        )
    return [_sample(row, disks, interfaces) for row in rows]


def _sample(
    row: Sequence[Any],
    disks: Mapping[tuple[uuid.UUID, datetime], list[DiskSample]],
    interfaces: Mapping[tuple[uuid.UUID, datetime], list[InterfaceSample]],
) -> MetricSample:
    key = (row[0], row[1])
    return MetricSample(
        server_id=row[0],
        time=row[1],
        received_at=row[2],
        cpu_percent=row[3],
        memory_percent=row[4],
        memory_total_bytes=row[5],
        memory_used_bytes=row[6],
        load1=row[7],
        load5=row[8],
        load15=row[9],
        uptime_seconds=row[10],
        cpu_cores=row[11],
        disks=tuple(disks.get(key, ())),
        interfaces=tuple(interfaces.get(key, ())),
    )


async def backtest(
    db: Fetcher,
    rule: AlertRule | RuleSpec,
    server_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    *,
    max_samples: int = 500_000,
    owner_id: uuid.UUID | None = None,
) -> list[Episode]:
    """The episodes `rule` would have produced over the stored samples of `server_ids` in
    [start, end). Raises BacktestTooLarge beyond `max_samples` samples.

    The caller decides which servers the rule covers (its server, or the owner's servers) and
    checks the user may see them."""
    spec = spec_from_rule(rule) if isinstance(rule, AlertRule) else rule
    owner = owner_id if owner_id is not None else (rule.owner_id if isinstance(rule, AlertRule) else None)
    samples = await load_samples(db, server_ids, start, end, max_samples=max_samples)
    return episodes(replay(spec, samples, until=end if spec.is_no_data else None, owner_id=owner))
