"""The chaos report's arithmetic on ledgers made by hand: a sample missing from the database, a
duplicate row, a socket that missed a frame or got one twice, each shows up where it should,
and a clean run passes."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from ops.chaos import report
from ops.chaos.ledger import AgentLedger, SocketLedger
from ops.chaos.run import ChaosConfig, Phase, Run


def _run(samples: int = 6) -> Run:
    run = Run.__new__(Run)  # no stack: the report reads only the ledgers
    run.config = ChaosConfig.short()
    now = time.monotonic()
    agent = AgentLedger("seed-1", "seed", uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC))
    for i in range(samples):
        agent.sampled_at.append(now + i)
        agent.ack(i + 1)
    sock = SocketLedger("socket-seed-1", agent)
    for n in range(1, samples + 1):
        sock.got(n, (0, n))
    run.ledgers, run.sockets = [agent], [sock]
    fault = Phase("kill_ingest", now + 3, injected_at=now + 3, recovered_s=1.0)
    run.phases = [Phase("steady", now - 1), fault]
    run.in_db = {"seed-1": Counter(range(1, samples + 1))}
    run.kafka = {"seed-1": Counter(range(1, samples + 1))}
    run.drained = True
    run.events = []
    return run


def test_a_clean_run_passes_and_counts_per_phase() -> None:
    result = report.build(_run())
    assert result.ok, result.failures
    assert [(r.phase, r.sent, r.stored, r.live_delivered) for r in result.rows] == [
        ("steady", 3, 3, 3),
        ("kill_ingest", 3, 3, 3),
    ]
    assert result.total.sent == 6 and result.total.lost == 0


def test_a_sample_missing_from_the_database_is_a_loss() -> None:
    run = _run()
    del run.in_db["seed-1"][5]
    result = report.build(run)
    assert not result.ok
    assert result.rows[1].lost == 1 and result.rows[1].acked_not_stored == 1
    assert result.rows[1].live_expected == 2  # a socket is owed only what is stored


def test_a_duplicate_row_and_an_unexplained_duplicate_frame_fail() -> None:
    run = _run()
    run.in_db["seed-1"][2] += 1
    run.sockets[0].got(4, (0, 40))  # sample 4 again, and Kafka holds one record of it
    result = report.build(run)
    assert result.rows[0].dup_stored == 1
    assert result.rows[1].dup_live_socket == 1 and result.rows[1].dup_live_kafka == 0
    assert not result.ok


def test_a_kafka_copy_seen_twice_live_is_counted_not_failed() -> None:
    run = _run()
    run.kafka["seed-1"][4] += 1  # the agent resent sample 4 after its ack was lost
    run.sockets[0].got(4, (0, 41))  # the copy's own position
    result = report.build(run)
    assert result.rows[1].kafka_copies == 1 and result.rows[1].dup_live_kafka == 1
    assert result.ok, result.failures


def test_a_socket_that_missed_a_frame_or_got_a_position_twice_fails() -> None:
    run = _run()
    del run.sockets[0].received[6]
    assert report.build(run).total.live_lost == 1
    run = _run()
    run.kafka["seed-1"][3] += 1
    run.sockets[0].got(3, (0, 3))  # the same record again: a resume that went back
    result = report.build(run)
    assert any("already received" in f for f in result.failures)


def test_a_fault_that_did_not_recover_fails() -> None:
    run = _run()
    run.phases[1].recovered_s = None
    result = report.build(run)
    assert any("not recovered" in f for f in result.failures)


def test_recovery_is_the_start_of_the_last_unbroken_whole_streak() -> None:
    from ops.chaos.run import recovery

    # Whole at first (the fault has not bitten yet), then late, then whole for good.
    ticks = [(10.0, True), (10.5, True), (11.0, False), (15.0, False), (15.5, True), (16.0, True)]
    assert recovery(ticks, 10.0, 16.0) == 5.5
    assert recovery([(10.0, True), (10.5, True)], 10.0, 11.0) == 0.0
    assert recovery([(10.0, True), (10.5, False)], 10.0, 11.0) is None
