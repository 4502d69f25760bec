"""Rules deployed as code, run by their one command as a real worker: the shipped disk fill-rate
example fires on a filling disk, through the same state and episode machinery."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from schemas.alerts import AlertEvent
from schemas.canonical import DiskSample, MetricSample
from stream_processors.alerts.code import code_rule_id
from tests.support.alerts import T0, AlertEnv, Bus, alert_events, wait_for

pytestmark = pytest.mark.timeout(240)
MODULE = "stream_processors.alerts.examples.disk_fill_rate"
GB = 1_000_000_000


def disk_sample(server: uuid.UUID, minute: int, used: int) -> MetricSample:
    t = T0 + timedelta(minutes=minute)
    return MetricSample(
        server_id=server,
        time=t,
        received_at=t,
        cpu_percent=5,
        memory_percent=5,
        disks=(
            DiskSample(
                mount="/var", total_bytes=GB, used_bytes=used, free_bytes=GB - used, percent=used / GB * 100
            ),
        ),
    )


async def test_the_disk_fill_rate_example_runs_as_its_own_processor(alert_env: AlertEnv) -> None:
    filling, steady = uuid.uuid4(), uuid.uuid4()
    worker = alert_env.worker(f"code-{uuid.uuid4().hex[:6]}", module=MODULE).start()
    # 10 MB a minute with 400 MB free: full in 40 minutes. The steady disk is 90 % full but flat.
    samples = [disk_sample(filling, m, 600_000_000 + m * 10_000_000) for m in range(30)]
    samples += [disk_sample(steady, m, 900_000_000) for m in range(30)]
    async with Bus(alert_env) as bus:
        await bus.samples(samples)

    async def fired() -> list[AlertEvent]:
        found = await alert_events(alert_env, {filling, steady})
        return [e for e in found if e.state == "firing"]

    events = await wait_for("the code rule to fire", fired, workers=[worker])
    (event,) = events
    assert event.server_id == filling and event.subject == "/var" and event.origin == "code"
    assert event.rule_id == code_rule_id(MODULE, "disk_hours_to_full")
    assert event.value is not None and event.value < 6
    # History from minute 0; a rate needs 5 minutes of it; then 5 minutes below 6 hours.
    assert (event.started_at - T0).total_seconds() == 300 and (event.time - T0).total_seconds() == 600
