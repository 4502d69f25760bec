"""Rules deployed as code, in a real worker: the shipped disk fill-rate example fires on a filling
disk of its owner's, through the same state and episode machinery, and never on another tenant's
servers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from alerting.code import code_rule_id
from schemas.alerts import AlertEvent
from schemas.canonical import DiskSample, MetricSample
from tests.support.alerts import T0, AlertEnv, Bus, add_owner_with_servers, alert_events, wait_for

pytestmark = pytest.mark.timeout(240)
MODULE = "alerting.examples.disk_fill_rate"
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


async def test_a_code_rule_fires_on_its_owners_filling_disk_and_never_on_another_tenants(
    alert_env: AlertEnv,
) -> None:
    dsn = alert_env.common.database_url
    owner, (filling, steady) = await add_owner_with_servers(dsn, 2)
    other, (theirs,) = await add_owner_with_servers(dsn, 1)  # another tenant, the same filling disk
    # The module deployed for both tenants: each gets rules of their own, on their servers only.
    deployed = f"{MODULE}@{owner},{MODULE}@{other}"
    worker = alert_env.worker(f"code-{uuid.uuid4().hex[:6]}", code_rules=deployed).start()
    # 10 MB a minute with 400 MB free: full in 40 minutes. The steady disk is 90 % full but flat.
    samples = [disk_sample(filling, m, 600_000_000 + m * 10_000_000) for m in range(30)]
    samples += [disk_sample(theirs, m, 600_000_000 + m * 10_000_000) for m in range(30)]
    samples += [disk_sample(steady, m, 900_000_000) for m in range(30)]
    async with Bus(alert_env) as bus:
        await bus.samples(samples)

    async def fired() -> list[AlertEvent]:
        found = await alert_events(alert_env, {filling, steady, theirs})
        firing = [e for e in found if e.state == "firing"]
        # Both filling disks evaluated (their events come from the same samples as any leak would).
        return firing if {e.server_id for e in firing} >= {filling, theirs} else []

    events = await wait_for("the code rule to fire on both tenants' disks", fired, workers=[worker])
    mine = code_rule_id(MODULE, "disk_hours_to_full", owner)
    others = code_rule_id(MODULE, "disk_hours_to_full", other)
    # One episode each, under each tenant's own rule: neither rule saw the other's server.
    assert sorted((e.server_id, e.rule_id, e.owner_id) for e in events) == sorted(
        [(filling, mine, owner), (theirs, others, other)]
    )
    (event,) = [e for e in events if e.server_id == filling]
    assert event.subject == "/var" and event.origin == "code"
    assert event.value is not None and event.value < 6
    # History from minute 0; a rate needs 5 minutes of it; then 5 minutes below 6 hours.
    assert (event.started_at - T0).total_seconds() == 300 and (event.time - T0).total_seconds() == 600
