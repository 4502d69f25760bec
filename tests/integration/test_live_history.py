"""History choices on connect (default log lines, an aggregated metrics resolution) and alert
frames (firing and resolved) on both sockets of a server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from api.live.settings import LiveSettings
from schemas import topics
from schemas.alerts import AlertEvent, AlertState, alert_event_id, episode_id
from schemas.canonical import utcnow
from schemas.frontend_wire import SERVER_FRAME, AlertFrame, MetricsFrame
from schemas.settings import CommonSettings
from tests.conftest import TEST_PARTITIONS
from tests.support.live_harness import (
    ApiServer,
    Persister,
    Publisher,
    add_server,
    add_user,
    client,
    log_record,
    number_of,
    sample,
    wait_persisted_offset,
)
from tests.support.persist import PersistEnv, running


def _persister(common: CommonSettings, topic: str) -> Persister:
    return Persister(common.kafka_bootstrap, common.database_url, topic, TEST_PARTITIONS)


@pytest.fixture
async def api(common_settings: CommonSettings) -> AsyncIterator[ApiServer]:
    async with ApiServer(common_settings, LiveSettings()) as server:
        yield server


async def test_logs_default_to_the_last_200_lines_then_live(
    api: ApiServer, common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], topic_prefix: str
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    topic = topics.LOGS.name(topic_prefix)
    async with (
        Publisher(common_settings.kafka_bootstrap, topic_prefix) as pub,
        Persister(
            common_settings.kafka_bootstrap, common_settings.database_url, topic, TEST_PARTITIONS
        ) as per,
    ):
        placed = await pub.many([log_record(server, n) for n in range(250)])
        partition, last = placed[-1]
        await per.wait_persisted(partition, last)
        async with client(api.url("logs", server), {"type": "auth", "token": api.token(owner)}) as c:
            await c.until(lambda f: f["type"] == "history_end")
            await pub.log(log_record(server, 250))
            await c.until(lambda f: f["type"] == "log" and number_of(f) == 250)
    history = [number_of(f) for f in c.frames if f["type"] == "log" and f["history"]]
    live = [number_of(f) for f in c.frames if f["type"] == "log" and not f["history"]]
    assert history == list(range(50, 250)) and live == [250]


@pytest.mark.parametrize("resolution", ["1m", "5m"])
async def test_metrics_history_from_the_rollups_of_the_real_persistence_processor(
    api: ApiServer,
    common_settings: CommonSettings,
    db: psycopg.AsyncConnection[Any],
    topic_prefix: str,
    resolution: str,
) -> None:
    owner = await add_user(db)
    server = await add_server(db, owner)
    now = utcnow()
    # Aligned to 5 minutes, so 5-minute buckets hold whole groups of 1-minute ones.
    base = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(hours=2)
    env = PersistEnv(common=common_settings, prefix=topic_prefix)
    async with Publisher(common_settings.kafka_bootstrap, topic_prefix) as pub, running(env.settings()):
        # Two hours of one sample every 20 s: 3 per minute, cpu = the minute's number.
        items = [sample(server, n * 20_000, base=base) for n in range(360)]
        items = [s.model_copy(update={"cpu_percent": float((n // 3) % 100)}) for n, s in enumerate(items)]
        placed = await pub.many(items)
        await wait_persisted_offset(db, topics.METRICS.name(topic_prefix), *placed[-1])
    auth = {"type": "auth", "token": api.token(owner), "window_seconds": 3 * 3600, "resolution": resolution}
    async with client(api.url("metrics", server), auth) as c:
        await c.until(lambda f: f["type"] == "history_end")
    buckets = [SERVER_FRAME.validate_python(f) for f in c.frames if f["type"] == "metrics"]
    minutes = 1 if resolution == "1m" else 5
    assert len(buckets) == 120 // minutes
    for n, frame in enumerate(buckets):
        assert isinstance(frame, MetricsFrame) and frame.history and frame.position is None
        data = frame.data
        first_minute = n * minutes
        expected = sum(float(m % 100) for m in range(first_minute, first_minute + minutes)) / minutes
        assert data.resolution == resolution and data.samples == 3 * minutes
        assert data.cpu_percent == pytest.approx(expected)
        assert data.timestamp == base + timedelta(minutes=first_minute)


def _alert(server: uuid.UUID, state: AlertState) -> AlertEvent:
    rule = uuid.UUID(int=7)
    started = utcnow()
    episode = episode_id(rule, server, None, started)
    return AlertEvent(
        event_id=alert_event_id(episode, state),
        episode_id=episode,
        state=state,
        rule_id=rule,
        rule_name="cpu high",
        server_id=server,
        metric="cpu",
        severity="critical",
        comparison="gt",
        threshold=90.0,
        value=97.5,
        started_at=started,
        time=started,
        message="cpu above 90%",
    )


async def test_alert_frames_reach_both_sockets_of_the_server(
    api: ApiServer, common_settings: CommonSettings, db: psycopg.AsyncConnection[Any], topic_prefix: str
) -> None:
    owner = await add_user(db)
    server, other = await add_server(db, owner), await add_server(db, owner)
    auth = {"type": "auth", "token": api.token(owner)}
    async with (
        Publisher(common_settings.kafka_bootstrap, topic_prefix) as pub,
        client(api.url("metrics", server), auth) as m,
        client(api.url("logs", server), auth) as lg,
    ):
        for c in (m, lg):
            await c.until(lambda f: f["type"] == "history_end")
        alerts = topics.ALERTS.name(topic_prefix)
        await pub.raw(alerts, _alert(other, "firing").to_bytes(), topics.server_key(other))  # not theirs
        states: tuple[AlertState, ...] = ("firing", "resolved")
        for state in states:
            await pub.raw(alerts, _alert(server, state).to_bytes(), topics.server_key(server))
        for c in (m, lg):
            await c.until(lambda f: f["type"] == "alert" and f["data"]["state"] == "resolved")
            got = [SERVER_FRAME.validate_python(f) for f in c.frames if f["type"] == "alert"]
            assert all(isinstance(a, AlertFrame) for a in got)
            assert [(a.data.state, a.data.server_id) for a in got if isinstance(a, AlertFrame)] == [
                ("firing", server),
                ("resolved", server),
            ]
