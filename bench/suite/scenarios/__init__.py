"""One module per scenario, each with `estimate(smoke) -> seconds` and `run(ctx) -> result`.

A result holds `summary`: rows of {what, value, unit, limit, limit_what, ratio} for the report's
summary table (a ratio against a limit measured in the same run), and whatever its figure plots.
"""

from types import ModuleType

from . import alerts, backfill, capacity, end_to_end, fanout, ingest, persistence

# In run order: the stage benchmarks first, capacity (the longest) last.
SCENARIOS: list[tuple[str, ModuleType]] = [
    ("ingest", ingest),
    ("persistence", persistence),
    ("alerts", alerts),
    ("end_to_end", end_to_end),
    ("fanout", fanout),
    ("backfill", backfill),
    ("capacity", capacity),
]
