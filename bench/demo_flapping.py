"""Episodes the demo's alert rules give over simulated time: the rules `make run` installs
(`ops.run.DEMO_RULES`) next to the bare thresholds it installed before (no `for`, no clear
threshold), replayed through the live engine's evaluation over the fleet simulator's own walk.

    .venv/bin/python -m bench.demo_flapping [--servers 5] [--minutes 16] [--seeds 5]

Each seed is one fleet (the simulator's random walk: mean-reverting cpu with bursts of 15 s to
1 min, slowly growing disks), sampled every 5 s like `make run`'s simulator. Prints the episodes
per rule set, per seed and in all.
"""

from __future__ import annotations

import argparse
import random
import uuid
from datetime import UTC, datetime, timedelta

from alerting.replay import backtest
from fleetpulse_agent.simulator import Walk
from ops.run import DEMO_RULES
from schemas.agent_wire import SeedMetricsFrame
from schemas.alerts import AlertRule
from schemas.canonical import MetricSample

INTERVAL = 5.0
OWNER = uuid.UUID(int=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BEFORE = (("cpu", 90.0), ("memory", 90.0), ("disk", 85.0))  # the thresholds of the earlier demo


def fleet(seed: int, servers: int, minutes: float) -> list[MetricSample]:
    rng = random.Random(seed)
    samples = []
    for n in range(servers):
        walk, server = Walk.new(rng), uuid.UUID(int=seed * 1000 + n + 2)
        for i in range(int(minutes * 60 / INTERVAL)):
            t = T0 + timedelta(seconds=i * INTERVAL)
            frame = SeedMetricsFrame.model_validate(walk.step(INTERVAL).to_dict())  # as ingest reads it
            sample = frame.to_canonical(server, t, 5)
            samples.append(sample.model_copy(update={"time": t, "received_at": t}))
    return samples


def rules(after: bool) -> list[AlertRule]:
    shapes = (
        [dict(r) for r in DEMO_RULES]
        if after
        else [{"name": m, "metric": m, "comparison": "gt", "threshold": v} for m, v in BEFORE]
    )
    return [
        AlertRule(rule_id=uuid.uuid4(), owner_id=OWNER, server_id=None, updated_at=T0, **s) for s in shapes
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=16)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    end = T0 + timedelta(minutes=args.minutes)
    totals = {False: 0, True: 0}
    for seed in range(args.seeds):
        samples = fleet(seed, args.servers, args.minutes)
        counts = {after: sum(len(backtest(r, samples, end)) for r in rules(after)) for after in (False, True)}
        totals = {k: totals[k] + v for k, v in counts.items()}
        print(f"seed {seed}: {counts[False]:3d} episodes before, {counts[True]:3d} with the demo rules")
    print(
        f"{args.seeds} fleets of {args.servers} servers, {args.minutes:g} min each: "
        f"{totals[False]} episodes before, {totals[True]} with the demo rules"
    )


if __name__ == "__main__":
    main()
