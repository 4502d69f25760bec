"""Servers and sharing, alert rules and thresholds (published to the compacted rules topic),
episodes (ack, resolve), the backtest, and the operations endpoints, over HTTP on the real
database and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from aiokafka import AIOKafkaConsumer

from schemas import topics
from schemas.alerts import ALERT_RULE
from schemas.canonical import MetricSample
from schemas.settings import CommonSettings
from stream_processors import db as persist_db
from tests.support.api_client import api_settings, create_server, register, running_api


async def _rule_messages(common: CommonSettings, rule_id: str, count: int) -> list[bytes | None]:
    """The values published under `rule_id` on the rules topic, oldest first (waits for `count`)."""
    consumer = AIOKafkaConsumer(
        topics.ALERT_RULES.name(common.topic_prefix),
        bootstrap_servers=common.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[bytes | None] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [r.value for r in records if r.key == rule_id.encode()]
    finally:
        await consumer.stop()
    return found


async def test_servers_crud_and_sharing(common_settings: CommonSettings, db: psycopg.AsyncConnection) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        owner, friend = await register(client), await register(client)
        created = await client.post(
            "/api/v1/servers",
            json={"name": "db-1", "host": "10.0.0.5", "port": 5432, "metadata": {"rack": "a3"}},
            headers=owner.headers,
        )
        assert created.status_code == 201
        server = created.json()
        assert (
            server["status"] == "unknown"
            and server["role"] == "owner"
            and server["metadata"] == {"rack": "a3"}
        )
        assert server["commands_enabled"] is False and server["last_seen"] is None
        sid = server["id"]

        updated = await client.put(
            f"/api/v1/servers/{sid}", json={"name": "db-primary"}, headers=owner.headers
        )
        assert updated.status_code == 200 and updated.json()["name"] == "db-primary"
        assert updated.json()["host"] == "10.0.0.5"  # fields not sent are kept
        nulls = await client.put(
            f"/api/v1/servers/{sid}",
            json={"name": None, "metadata": None, "port": None},
            headers=owner.headers,
        )
        assert (
            nulls.status_code == 200 and nulls.json()["name"] == "db-primary" and nulls.json()["port"] is None
        )
        assert (
            await client.post("/api/v1/servers", json={"name": ""}, headers=owner.headers)
        ).status_code == 422
        assert (
            await client.post("/api/v1/servers", json={"name": "x", "port": 70000}, headers=owner.headers)
        ).status_code == 422

        # Sharing: viewer, then co-owner; the co-owner manages shares and keys, then it is revoked.
        share = await client.post(
            f"/api/v1/servers/{sid}/shares",
            json={"email": friend.email, "role": "viewer"},
            headers=owner.headers,
        )
        assert share.status_code == 201 and share.json()["role"] == "viewer"
        assert (
            await client.put(f"/api/v1/servers/{sid}", json={"name": "mine"}, headers=friend.headers)
        ).status_code == 403
        assert (await client.get(f"/api/v1/servers/{sid}", headers=friend.headers)).json()["role"] == "viewer"
        await client.post(
            f"/api/v1/servers/{sid}/shares",
            json={"email": friend.email, "role": "owner"},
            headers=owner.headers,
        )
        assert (await client.get(f"/api/v1/servers/{sid}", headers=friend.headers)).json()["role"] == "owner"
        key = await client.post("/api/v1/api-keys", json={"server_id": sid}, headers=friend.headers)
        assert key.status_code == 201
        self_share = await client.post(
            f"/api/v1/servers/{sid}/shares",
            json={"email": owner.email, "role": "viewer"},
            headers=friend.headers,
        )
        # The owner already has every right: a 422 naming the field (a 400 before problem details).
        assert self_share.status_code == 422
        assert self_share.json()["errors"][0]["loc"] == ["body", "email"]
        nobody = await client.post(
            f"/api/v1/servers/{sid}/shares",
            json={"email": "nobody@example.com", "role": "viewer"},
            headers=owner.headers,
        )
        assert nobody.status_code == 404
        assert (
            await client.delete(f"/api/v1/servers/{sid}/shares/{friend.id}", headers=owner.headers)
        ).status_code == 204
        assert (await client.get(f"/api/v1/servers/{sid}", headers=friend.headers)).status_code == 404

        # Delete: gone for everyone, keys with it, and the audit trail keeps the story.
        assert (await client.delete(f"/api/v1/servers/{sid}", headers=owner.headers)).status_code == 204
        assert (await client.get(f"/api/v1/servers/{sid}", headers=owner.headers)).status_code == 404
        assert await (
            await db.execute("SELECT count(*) FROM api_keys WHERE server_id = %s", (sid,))
        ).fetchone() == (0,)
        trail = (await client.get("/api/v1/audit/me", headers=owner.headers)).json()["items"]
        actions = [row["action"] for row in trail if row["server_id"] == sid]
        assert actions[0] == "delete_server" and "share_server" in actions and "update_server" in actions
        assert all(row["client"] for row in trail)


async def test_alert_rules_thresholds_episodes_and_backtest(
    common_settings: CommonSettings, db: psycopg.AsyncConnection, database_url: str
) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        owner, operator = await register(client), await register(client)
        server_id = await create_server(client, owner)
        await client.post(
            f"/api/v1/servers/{server_id}/shares",
            json={"email": operator.email, "role": "operator"},
            headers=owner.headers,
        )

        # A rule: stored, published; an update publishes again, a delete publishes a tombstone.
        body = {
            "server_id": str(server_id),
            "name": "cpu hot",
            "metric": "cpu",
            "threshold": 80,
            "for_seconds": 60,
            "clear_threshold": 70,
            "severity": "critical",
        }
        created = await client.post("/api/v1/alerts/rules", json=body, headers=owner.headers)
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        assert created.json()["rule"]["owner_id"] == str(owner.id)
        updated = await client.put(
            f"/api/v1/alerts/rules/{rule_id}", json={**body, "threshold": 90}, headers=owner.headers
        )
        assert updated.status_code == 200 and updated.json()["rule"]["threshold"] == 90
        bad = await client.post(
            "/api/v1/alerts/rules", json={**body, "clear_threshold": 95}, headers=owner.headers
        )
        assert bad.status_code == 422  # hysteresis on the wrong side
        assert (
            await client.post("/api/v1/alerts/rules", json={**body, "threshold": 150}, headers=owner.headers)
        ).status_code == 422
        stored = await (
            await db.execute("SELECT definition FROM alert_rules WHERE id = %s", (rule_id,))
        ).fetchone()
        assert stored is not None and stored[0]["threshold"] == 90

        # The backtest replays stored samples with the engine's evaluation.
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        cpu = [50.0] * 5 + [95.0] * 10 + [50.0] * 5  # above 90 for 10 samples of 20 s
        samples = [
            MetricSample(
                server_id=server_id,
                time=base + timedelta(seconds=20 * i),
                received_at=base + timedelta(seconds=20 * i),
                cpu_percent=value,
                memory_percent=10.0,
            )
            for i, value in enumerate(cpu)
        ]
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await persist_db.prepare_connection(conn)
            async with conn.transaction():
                await persist_db.write_batch(
                    conn,
                    samples,
                    {},
                    rollup_horizon=base - timedelta(days=1),
                    stale_after=timedelta(minutes=5),
                )
        window = {
            "start": (base - timedelta(minutes=1)).isoformat(),
            "end": (base + timedelta(hours=1)).isoformat(),
        }
        result = await client.post(
            f"/api/v1/alerts/rules/{rule_id}/backtest", json=window, headers=owner.headers
        )
        assert result.status_code == 200, result.text
        [episode] = result.json()["episodes"]
        # Fires once the condition held 60 s (from 100 s to 160 s), clears below 70 at 300 s.
        assert datetime.fromisoformat(episode["started_at"]) == base + timedelta(seconds=100)
        assert datetime.fromisoformat(episode["fired_at"]) == base + timedelta(seconds=160)
        assert datetime.fromisoformat(episode["resolved_at"]) == base + timedelta(seconds=300)
        unsaved = await client.post(
            "/api/v1/alerts/backtest",
            json={**window, "rule": {**body, "for_seconds": 0}},
            headers=operator.headers,
        )
        assert unsaved.status_code == 200 and len(unsaved.json()["episodes"]) == 1
        small = api_settings(common_settings, backtest_max_samples=5)
        async with running_api(small) as (_, tight):
            refused = await tight.post(
                f"/api/v1/alerts/rules/{rule_id}/backtest", json=window, headers=owner.headers
            )
            assert refused.status_code == 422 and "narrow" in refused.json()["detail"]

        assert (
            await client.delete(f"/api/v1/alerts/rules/{rule_id}", headers=owner.headers)
        ).status_code == 204
        messages = await _rule_messages(common_settings, rule_id, 3)
        assert ALERT_RULE.validate_json(messages[0] or b"").threshold == 80
        assert ALERT_RULE.validate_json(messages[1] or b"").threshold == 90
        assert messages[2] is None  # the tombstone
        assert (await client.get(f"/api/v1/alerts/rules/{rule_id}", headers=owner.headers)).status_code == 404

        # Thresholds: the ChatOps shape, as rules.
        threshold = await client.post(
            "/api/v1/alerts/thresholds",
            json={
                "server_id": str(server_id),
                "metric_type": "disk",
                "threshold_value": 85,
                "comparison": "gt",
                "enabled": True,
            },
            headers=operator.headers,
        )
        assert threshold.status_code == 201, threshold.text
        tid = threshold.json()["id"]
        assert {
            k: threshold.json()[k]
            for k in ("server_id", "metric_type", "threshold_value", "comparison", "enabled")
        } == {
            "server_id": str(server_id),
            "metric_type": "disk",
            "threshold_value": 85,
            "comparison": "gt",
            "enabled": True,
        }
        changed = await client.put(
            f"/api/v1/alerts/thresholds/{tid}",
            json={
                "server_id": str(server_id),
                "metric_type": "disk",
                "threshold_value": 90,
                "comparison": "gt",
                "enabled": False,
            },
            headers=operator.headers,
        )
        assert changed.status_code == 200 and changed.json()["enabled"] is False
        listed = (await client.get("/api/v1/alerts/thresholds", headers=operator.headers)).json()
        assert [t["id"] for t in listed] == [tid]
        as_rule = (await client.get(f"/api/v1/alerts/rules/{tid}", headers=operator.headers)).json()["rule"]
        assert as_rule["metric"] == "disk" and as_rule["origin"] == "threshold" and as_rule["threshold"] == 90
        published = await _rule_messages(common_settings, tid, 2)
        assert ALERT_RULE.validate_json(published[1] or b"").enabled is False
        assert (
            await client.delete(f"/api/v1/alerts/thresholds/{tid}", headers=operator.headers)
        ).status_code == 204

        # Episodes: filters, acknowledge and resolve by an operator, kept by the engine's merge.
        episode_id = uuid.uuid4()
        await db.execute(
            """INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id, metric,
                                   severity, comparison, threshold, state, started_at, fired_at,
                                   fired_value, message)
               VALUES (%s, %s, 'cpu hot', 'rule', %s, %s, 'cpu', 'critical', 'gt', 90, 'firing',
                       now() - interval '5 minutes', now(), 97, 'cpu 97 > 90')""",
            (episode_id, rule_id, owner.id, server_id),
        )
        firing = (
            await client.get(
                "/api/v1/alerts", params={"state": "firing", "severity": "critical"}, headers=operator.headers
            )
        ).json()["items"]
        assert [a["episode_id"] for a in firing] == [str(episode_id)]
        assert (
            await client.get("/api/v1/alerts", params={"severity": "info"}, headers=operator.headers)
        ).json() == {"items": [], "next_cursor": None}
        ack = await client.post(f"/api/v1/alerts/{episode_id}/acknowledge", headers=operator.headers)
        assert ack.status_code == 200 and ack.json()["acknowledged_by"] == str(operator.id)
        resolved = await client.post(f"/api/v1/alerts/{episode_id}/resolve", headers=operator.headers)
        assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
        assert resolved.json()["resolved_by"] == str(operator.id)
        assert (
            await client.get("/api/v1/alerts", params={"state": "firing"}, headers=owner.headers)
        ).json() == {"items": [], "next_cursor": None}
        audit = (await client.get(f"/api/v1/audit/servers/{server_id}", headers=owner.headers)).json()[
            "items"
        ]
        assert {"acknowledge", "resolve", "create_threshold", "create_rule"} <= {
            row["action"] for row in audit
        }


async def test_operations_endpoints(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200 and ready.json() == {
            "status": "ready",
            "database": "ok",
            "kafka": "ok",
        }
        await client.get("/api/v1/auth/me")  # a 401, counted
        text = (await client.get("/metrics")).text
        assert 'fleetpulse_api_requests_total{method="GET",route="/api/v1/auth/me",status="401"} 1.0' in text
        assert "fleetpulse_api_request_seconds_bucket" in text
        assert 'fleetpulse_api_consumer_lag{consumer="command_results"}' in text
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_values_the_database_refuses_are_422(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        owner = await register(client)
        for body in ({"name": "nul\x00byte"}, {"name": "ok", "metadata": {"k": "nul\x00"}}):
            r = await client.post("/api/v1/servers", json=body, headers=owner.headers)
            assert r.status_code == 422, (body, r.status_code, r.text)
        assert (await client.get("/api/v1/servers", headers=owner.headers)).json() == []
