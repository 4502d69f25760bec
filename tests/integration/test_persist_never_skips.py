"""Persistence never skips, on the real Kafka and TimescaleDB, with faults injected into the write
(a test-only patch of `stream_processors.db.write_batch`; production has no switch for it): a
message whose write raises anything is dead-lettered and the rest of its batch stored; a write
path that fails for every sample dead-letters nothing, commits nothing past it, and once it works
again everything is stored exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import topics
from schemas.canonical import MetricSample, utcnow
from stream_processors import db
from tests.integration.test_acked_means_stored import _dead_letters
from tests.support.persist import (
    PersistEnv,
    count_metrics,
    log_record,
    new_env,
    produce,
    running,
    sample,
    scalar,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def env(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> PersistEnv:
    return await new_env(database_url, kafka_bootstrap, tmp_path / "state")


def _inject(monkeypatch: pytest.MonkeyPatch, fails: Any) -> None:
    """Make `db.write_batch` raise what `fails(payloads)` returns (None: write for real)."""
    real = db.write_batch

    async def write_batch(conn: db.Conn, payloads: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        error = fails(payloads)
        if error is not None:
            raise error
        await real(conn, payloads, *args, **kwargs)

    monkeypatch.setattr(db, "write_batch", write_batch)


async def test_a_message_whose_write_raises_anything_is_dead_lettered_and_the_rest_stored(
    env: PersistEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = env.common.database_url
    poison_server = uuid.uuid4()
    tenants = [uuid.uuid4() for _ in range(6)]
    now = utcnow()
    poison = sample(poison_server, now, cpu=13.0)
    good = [sample(t, now - timedelta(seconds=i), cpu=float(i)) for t in tenants for i in range(20)]
    logs = [log_record(t, now, f"line of {t}") for t in tenants]
    _inject(
        monkeypatch,
        lambda payloads: (
            RuntimeError("injected: this sample breaks the writer")
            if any(p.server_id == poison_server for p in payloads)
            else None
        ),
    )
    await produce(env, [*good[:60], poison, *logs, *good[60:]])
    async with running(env.settings(batch_within_seconds=1.0)) as service:
        await wait_until(lambda: _metrics_at_least(dsn, tenants, len(good)), what="every other sample")
        await wait_until(lambda: _logs_at_least(dsn, tenants, len(logs)), what="every log line")
        (letter,) = await _dead_letters(env, 1)
        await wait_until(lambda: _seam_reaches(env, len(good) + 1), what="the seam past the dead letter")
        assert service.stats.failing == 0 and service.stats.write_path_failures == 0
    assert letter.value == poison.to_bytes().decode()
    assert letter.error == "unwritable: RuntimeError: injected: this sample breaks the writer"
    assert await count_metrics(dsn, tenants) == (len(good), len(good))
    assert await count_metrics(dsn, [poison_server]) == (0, 0)


async def test_a_write_path_broken_for_every_sample_dead_letters_nothing_and_resumes(
    env: PersistEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = env.common.database_url
    tenants = [uuid.uuid4() for _ in range(4)]
    now = utcnow()
    samples = [sample(t, now - timedelta(seconds=i), cpu=float(i)) for t in tenants for i in range(30)]
    broken = {"yes": True}
    _inject(
        monkeypatch,
        lambda payloads: (
            TypeError("injected: a bug that fails every sample")
            if broken["yes"] and any(isinstance(p, MetricSample) for p in payloads)
            else None
        ),
    )
    await produce(env, samples)
    settings = env.settings(db_retry_initial_seconds=0.05, db_retry_max_seconds=0.3)
    async with running(settings) as service:
        await wait_until(
            lambda: _stat_at_least(service, "write_path_failures", 3), what="the broken write path seen"
        )
        assert service.stats.failing >= 3 and service.stats.dead_letters == 0
        assert await count_metrics(dsn, tenants) == (0, 0)
        # Nothing was committed past the unwritten samples: neither the group nor the seam moved.
        assert await _seam(env) is None
        broken["yes"] = False  # the fix is deployed
        await wait_until(lambda: _metrics_at_least(dsn, tenants, len(samples)), what="every sample")
        await wait_until(lambda: _seam_reaches(env, len(samples)), what="the seam to catch up")
        assert service.stats.dead_letters == 0 and service.stats.failing == 0
    assert await count_metrics(dsn, tenants) == (len(samples), len(samples))


async def _metrics_at_least(dsn: str, servers: list[uuid.UUID], n: int) -> bool:
    return (await count_metrics(dsn, servers))[0] >= n


async def _logs_at_least(dsn: str, servers: list[uuid.UUID], n: int) -> bool:
    return int(await scalar(dsn, "SELECT count(*) FROM logs WHERE server_id = ANY(%s)", (servers,))) >= n


async def _seam(env: PersistEnv) -> int | None:
    found = await scalar(
        env.common.database_url,
        "SELECT sum(last_offset + 1) FROM persisted_offsets WHERE topic = %s",
        (env.topic(topics.METRICS),),
    )
    return None if found is None else int(found)


async def _seam_reaches(env: PersistEnv, n: int) -> bool:
    return (await _seam(env) or 0) >= n


async def _stat_at_least(service: Any, name: str, n: int) -> bool:
    return bool(getattr(service.stats, name) >= n)
