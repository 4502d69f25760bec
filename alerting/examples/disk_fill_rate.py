"""Disk fill rate: "this disk will be full within 6 hours at the current rate".

Deploy it for a user: add `alerting.examples.disk_fill_rate@<user id>` to
FLEETPULSE_PROCESSORS_ALERTS_CODE_RULES (docs/alerts.md).

For each mount, the growth rate is the least-squares slope of used bytes over the last
`WINDOW_SECONDS` of samples; the value is the hours until `free_bytes` reach zero at that rate
(capped at `NEVER_HOURS` when the disk is not filling). It fires below 6 hours held for 5 minutes
and resolves above 12 hours held for 10 minutes, so a short burst of writes does not page anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerting.code import rule
from alerting.evaluation import to_us
from schemas.canonical import MetricSample

WINDOW_SECONDS = 3600.0
MIN_POINTS = 3
MIN_SPAN_SECONDS = 300.0
STEP_SECONDS = 30.0  # at most one point per step, so the state stays small
NEVER_HOURS = 1e6


def slope_per_second(points: list[list[float]]) -> float:
    """Least-squares slope of [(t_seconds, value)]."""
    n = len(points)
    mean_t = sum(p[0] for p in points) / n
    mean_v = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_t) ** 2 for p in points)
    if var == 0:
        return 0.0
    return sum((p[0] - mean_t) * (p[1] - mean_v) for p in points) / var


@rule(
    name="disk full within 6 hours",
    metric="disk_hours_to_full",
    comparison="lt",
    threshold=6.0,
    clear_threshold=12.0,
    for_seconds=300.0,
    clear_for_seconds=600.0,
    severity="critical",
)
def disk_hours_to_full(sample: MetricSample, memory: dict[str, Any]) -> Mapping[str, float]:
    now = to_us(sample.time) / 1e6
    hours: dict[str, float] = {}
    for disk in sample.disks:
        points: list[list[float]] = memory.setdefault(disk.mount, [])
        if not points or now - points[-1][0] >= STEP_SECONDS:
            points.append([now, float(disk.used_bytes)])
        while points and now - points[0][0] > WINDOW_SECONDS:
            points.pop(0)
        if len(points) < MIN_POINTS or now - points[0][0] < MIN_SPAN_SECONDS:
            continue  # not enough history for a rate yet
        rate = slope_per_second(points)
        if rate <= 0:
            hours[disk.mount] = NEVER_HOURS
        else:
            hours[disk.mount] = min(disk.free_bytes / rate / 3600.0, NEVER_HOURS)
    return hours
