"""Replay: stored history through the live engine's own evaluation, folded into episodes.

The backtest's pure half (the API loads the samples, `api/db/backtest.py`, and calls `backtest`):
samples are fed in time order to `evaluation` with fresh state, so the same data gives the same
episodes, with the same ids, as the live engine produced.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from schemas.alerts import AlertEvent, AlertRule
from schemas.canonical import MetricSample

from .evaluation import RuleSpec, State, evaluate_sample, evaluate_silence, new_state, spec_from_rule


class Episode(BaseModel):
    """One episode the rule would have produced."""

    episode_id: uuid.UUID = Field(
        description="the id the live engine gives the same episode",
        examples=["9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"],
    )
    server_id: uuid.UUID = Field(description="the server", examples=["3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65"])
    subject: str | None = Field(
        description="the mount or interface of a disk or network episode; null for the others",
        examples=[None],
    )
    started_at: datetime = Field(
        description="when the condition began to hold (UTC)", examples=["2026-01-01T11:55:00Z"]
    )
    fired_at: datetime = Field(
        description="when it would have fired (UTC)", examples=["2026-01-01T12:00:00Z"]
    )
    fired_value: float | None = Field(
        description="the value that fired it; null for no_data", examples=[93.5]
    )
    resolved_at: datetime | None = Field(
        description="when it would have resolved (UTC); null: still firing at the end of the range",
        examples=[None],
    )
    resolved_value: float | None = Field(
        description="the value that resolved it; null while firing, or for no_data", examples=[None]
    )


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


def backtest(
    rule: AlertRule | RuleSpec,
    samples: Iterable[MetricSample],
    end: datetime,
    *,
    owner_id: uuid.UUID | None = None,
) -> list[Episode]:
    """The episodes `rule` would have produced over `samples` (those of a range ending at `end`:
    a no-data silence running up to `end` fires)."""
    spec = spec_from_rule(rule) if isinstance(rule, AlertRule) else rule
    owner = owner_id if owner_id is not None else (rule.owner_id if isinstance(rule, AlertRule) else None)
    return episodes(replay(spec, samples, until=end if spec.is_no_data else None, owner_id=owner))
