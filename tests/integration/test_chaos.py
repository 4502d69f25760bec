"""The chaos run in CI: the reduced run (fewer agents, a 20 s cut instead of ten minutes) on a
private Kafka and PostgreSQL of its own, with every fault of the full run. It fails on any
sample lost or stored twice, any stored sample a socket never received, any duplicate frame
that Kafka copies do not explain, and any fault the system did not recover from.
`FLEETPULSE_FULL=1` runs the full scenario (some fifteen minutes). CI cost, measured on the shared
2-core development machine under a load of 17 to 30: 4.5 to 10 minutes, most of it the private
Kafka's two starts; a quiet machine takes less (not measured)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ops.chaos import report
from ops.chaos.run import FAULTS, ChaosConfig, execute
from schemas.settings import CommonSettings
from tests.conftest import FULL, IN_CI

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if FULL else 900)]


async def test_faults_in_turn_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    shared = CommonSettings().state_dir.resolve()
    jars = shared / "kafka" / "lib"
    if not any(jars.glob("kafka_2.13-*.jar")):
        message = f"no Kafka jars in {jars}: run `make setup` (infra/services.sh setup)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    config = ChaosConfig.full() if FULL else ChaosConfig.short()
    state = shared / "chaos" / f"test-{uuid.uuid4().hex[:8]}"
    run = await execute(config, state, jars, tmp_path)
    result = report.build(run)
    result.environment = report.environment(run)
    report.write(result, tmp_path)
    print(report.markdown(result))

    assert [r.phase for r in result.rows] == ["steady", *FAULTS, "drain"]
    total = result.total
    assert total.sent > 0 and total.sent == total.acked == total.stored, result.failures
    assert total.lost == total.acked_not_stored == total.dup_stored == 0, result.failures
    assert total.live_expected == total.stored * len(run.sockets) // len(run.ledgers)
    assert total.live_lost == 0 and total.dup_live_socket == 0, result.failures
    for row in result.rows[1:-1]:
        assert row.sent > 0, f"no sample was taken during {row.phase}"
        assert row.recovered_s is not None, f"{row.phase} did not recover"
    assert result.ok, result.failures
    assert not state.exists(), "the private services' state was not deleted"
