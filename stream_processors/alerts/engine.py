"""What the alert engine does with a batch of samples or a clock tick, in memory and synchronously.

State per server (rule id -> the rule's state, see `alerting.evaluation`) lives in a plain dict
per partition, owned by the consumer loop (`consumer.py`), which is the only writer: a batch and
a tick are evaluated one after the other, never interleaved, so neither writes over the other's
update. A step returns the events it caused and the servers whose state changed; the loop makes
the events durable first, then writes each changed server's state once to the changelog, then
commits the batch's offsets.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from alerting.evaluation import State, evaluate_server, evaluate_silence
from alerting.registry import RuleRegistry
from schemas.alerts import AlertEvent
from schemas.canonical import MetricSample

ServerStates = dict[str, State]
"""One server's state: rule id (text) -> that rule's state."""

Owners = Callable[[uuid.UUID], uuid.UUID | None]


@dataclass(slots=True)
class Step:
    """What one batch or tick produced: events to publish, then states to write."""

    events: list[AlertEvent] = field(default_factory=list)
    # (partition, server key) -> the server's new state ({} once no rule has state for it).
    changed: dict[tuple[int, bytes], ServerStates] = field(default_factory=dict)


def evaluate_batch(
    registry: RuleRegistry,
    partitions: dict[int, dict[bytes, ServerStates]],
    samples: Iterable[tuple[int, bytes, MetricSample]],
    owners: Owners,
) -> Step:
    """Evaluate (partition, server key, sample) in order, updating `partitions` in place."""
    step = Step()
    retired = registry.retired
    for partition, key, sample in samples:
        states = partitions[partition]
        server = states.get(key)
        owner = owners(sample.server_id)
        specs = registry.specs_for(sample.server_id, owner)
        if not specs and not server:
            continue  # no rule watches it and nothing to resolve: no state to keep
        if server is None:
            server = states[key] = {}
        step.events.extend(evaluate_server(specs, server, sample, owner, retired))
        step.changed[(partition, key)] = server
        if not server:
            del states[key]
    return step


def evaluate_tick(
    registry: RuleRegistry,
    partitions: dict[int, dict[bytes, ServerStates]],
    caught_up: Iterable[int],
    owners: Owners,
    now: datetime,
) -> Step:
    """The no-data clock over the servers of the caught-up partitions (a partition with samples
    waiting is not ticked: its silence may be over already, in the backlog)."""
    step = Step()
    for partition in caught_up:
        for key, server in partitions.get(partition, {}).items():
            server_id = uuid.UUID(key.decode())
            specs = [s for s in registry.specs_for(server_id, owners(server_id)) if s.is_no_data]
            before = len(step.events)
            for spec in specs:
                state = server.get(str(spec.rule_id))
                if state is not None:
                    step.events.extend(evaluate_silence(spec, server_id, now, state, owners(server_id)))
            if len(step.events) > before:
                step.changed[(partition, key)] = server
    return step
