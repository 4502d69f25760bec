"""`GET /api/v1/fleet` and server tags, on the real database: samples written by the persistence
path itself (so the sparkline reads the rollups persistence computes), alerts as the sink stores
them, and a viewer and a stranger next to the owner."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from api.routes.fleet import SPARK_POINTS, spark_start
from schemas.canonical import DiskSample, MetricSample
from schemas.settings import CommonSettings
from stream_processors import db as persist_db
from tests.support.api_client import api_settings, register, running_api


async def _persist(database_url: str, samples: list[MetricSample]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await persist_db.prepare_connection(conn)
        async with conn.transaction():
            await persist_db.write_batch(
                conn,
                samples,
                {},
                rollup_horizon=datetime.now(UTC) - timedelta(days=1),
                stale_after=timedelta(minutes=5),
            )


async def _alert(
    db: psycopg.AsyncConnection, owner: uuid.UUID, server: uuid.UUID, severity: str, state: str
) -> None:
    await db.execute(
        """INSERT INTO alerts (episode_id, rule_id, rule_name, origin, owner_id, server_id, metric,
                               severity, comparison, threshold, state, started_at, fired_at, message)
           VALUES (%s, %s, 'r', 'rule', %s, %s, 'cpu', %s, 'gt', 90, %s, now(), now(), 'm')""",
        (uuid.uuid4(), uuid.uuid4(), owner, server, severity, state),
    )


async def test_fleet_summary(common_settings: CommonSettings, db: psycopg.AsyncConnection) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        owner, viewer, stranger = await register(client), await register(client), await register(client)
        ids = {}
        for name, tags in (("web-1", ["prod", "eu"]), ("web-2", ["prod"]), ("db-1", [])):
            r = await client.post("/api/v1/servers", json={"name": name, "tags": tags}, headers=owner.headers)
            assert r.status_code == 201, r.text
            assert r.json()["tags"] == tags
            ids[name] = uuid.UUID(r.json()["id"])
        r = await client.post(
            f"/api/v1/servers/{ids['web-2']}/shares",
            json={"email": viewer.email, "role": "viewer"},
            headers=owner.headers,
        )
        assert r.status_code == 201

        now = datetime.now(UTC)
        start = spark_start(now)
        # web-1: two samples two minutes apart; the newest has two disks, "/data" the fuller one.
        older = start + timedelta(minutes=SPARK_POINTS - 3, seconds=10)
        newest = now - timedelta(seconds=1)
        disks = (
            DiskSample(mount="/", total_bytes=100, used_bytes=71, free_bytes=29, percent=71.0),
            DiskSample(mount="/data", total_bytes=100, used_bytes=88, free_bytes=12, percent=88.5),
        )
        await _persist(
            common_settings.database_url,
            [
                MetricSample(
                    server_id=ids["web-1"],
                    time=older,
                    received_at=older,
                    cpu_percent=10.0,
                    memory_percent=40.0,
                ),
                MetricSample(
                    server_id=ids["web-1"],
                    time=newest,
                    received_at=newest,
                    cpu_percent=12.5,
                    memory_percent=40.1,
                    disks=disks,
                ),
            ],
        )
        await _alert(db, owner.id, ids["web-1"], "warning", "firing")
        await _alert(db, owner.id, ids["web-1"], "critical", "firing")
        await _alert(db, owner.id, ids["web-1"], "critical", "resolved")
        await _alert(db, owner.id, ids["web-2"], "info", "firing")

        r = await client.get("/api/v1/fleet", headers=owner.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["truncated"] is False
        servers = {s["name"]: s for s in body["servers"]}
        assert [s["name"] for s in body["servers"]] == ["db-1", "web-1", "web-2"]  # by name
        web1 = servers["web-1"]
        assert web1["server_id"] == str(ids["web-1"]) and web1["role"] == "owner"
        assert web1["tags"] == ["prod", "eu"] and web1["status"] == "online"
        assert web1["cpu_percent"] == 12.5 and web1["memory_percent"] == 40.1
        assert (web1["disk_mount"], web1["disk_percent"]) == ("/data", 88.5)
        assert datetime.fromisoformat(web1["sample_time"]) == newest
        assert web1["alerts"] == {"firing": 2, "max_severity": "critical"}
        spark = web1["spark"]
        assert datetime.fromisoformat(spark["start"]) == start and spark["step_seconds"] == 60
        assert len(spark["cpu_percent"]) == len(spark["memory_percent"]) == SPARK_POINTS
        expected_cpu: list[float | None] = [None] * SPARK_POINTS
        expected_cpu[SPARK_POINTS - 3] = 10.0
        expected_cpu[SPARK_POINTS - 1] = 12.5
        if newest < start + timedelta(minutes=SPARK_POINTS - 1):  # the minute turned during the test
            expected_cpu[SPARK_POINTS - 2], expected_cpu[SPARK_POINTS - 1] = 12.5, None
        assert spark["cpu_percent"] == expected_cpu
        assert spark["memory_percent"][SPARK_POINTS - 3] == 40.0

        db1 = servers["db-1"]
        assert db1["status"] == "unknown" and db1["last_seen"] is None and db1["sample_time"] is None
        assert db1["cpu_percent"] is None and db1["disk_percent"] is None and db1["disk_mount"] is None
        assert db1["spark"]["cpu_percent"] == [None] * SPARK_POINTS
        assert db1["alerts"] == {"firing": 0, "max_severity": None}
        assert servers["web-2"]["alerts"] == {"firing": 1, "max_severity": "info"}

        # Filters: every tag must match; statuses are alternatives.
        r = await client.get("/api/v1/fleet", params=[("tag", "prod"), ("tag", "eu")], headers=owner.headers)
        assert [s["name"] for s in r.json()["servers"]] == ["web-1"]
        r = await client.get("/api/v1/fleet", params={"tag": "prod"}, headers=owner.headers)
        assert [s["name"] for s in r.json()["servers"]] == ["web-1", "web-2"]
        r = await client.get(
            "/api/v1/fleet", params=[("status", "unknown"), ("status", "offline")], headers=owner.headers
        )
        assert [s["name"] for s in r.json()["servers"]] == ["db-1", "web-2"]
        r = await client.get("/api/v1/fleet", params={"status": "sleeping"}, headers=owner.headers)
        assert r.status_code == 422
        r = await client.get("/api/v1/servers", params={"tag": "eu"}, headers=owner.headers)
        assert [s["name"] for s in r.json()] == ["web-1"]

        # The viewer sees only the shared server, with their role; the stranger nothing.
        r = await client.get("/api/v1/fleet", headers=viewer.headers)
        assert [(s["name"], s["role"]) for s in r.json()["servers"]] == [("web-2", "viewer")]
        r = await client.get("/api/v1/fleet", headers=stranger.headers)
        assert r.json()["servers"] == [] and r.json()["truncated"] is False

    # The bound is a setting: past it the answer is cut, and says so.
    async with running_api(api_settings(common_settings, fleet_max_servers=2)) as (_, client):
        login = await client.post(
            "/api/v1/auth/login/json", json={"email": owner.email, "password": owner.password}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body = (await client.get("/api/v1/fleet", headers=headers)).json()
        assert [s["name"] for s in body["servers"]] == ["db-1", "web-1"] and body["truncated"] is True


async def test_server_tags_are_bounded_and_replaced(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        owner = await register(client)
        r = await client.post(
            "/api/v1/servers", json={"name": "a", "tags": ["prod", " eu ", "prod"]}, headers=owner.headers
        )
        assert r.status_code == 201 and r.json()["tags"] == ["prod", "eu"]  # trimmed, each once
        sid = r.json()["id"]
        for bad in (["has space"], ["a,b"], [""], ["x" * 65], [f"t{i}" for i in range(33)], "prod"):
            r = await client.post("/api/v1/servers", json={"name": "b", "tags": bad}, headers=owner.headers)
            assert r.status_code == 422, (bad, r.text)
            r = await client.put(f"/api/v1/servers/{sid}", json={"tags": bad}, headers=owner.headers)
            assert r.status_code == 422, (bad, r.text)
        r = await client.put(f"/api/v1/servers/{sid}", json={"name": "renamed"}, headers=owner.headers)
        assert r.json()["tags"] == ["prod", "eu"]  # not named: unchanged
        r = await client.put(f"/api/v1/servers/{sid}", json={"tags": ["dev"]}, headers=owner.headers)
        assert r.status_code == 200 and r.json()["tags"] == ["dev"]
        r = await client.put(f"/api/v1/servers/{sid}", json={"tags": []}, headers=owner.headers)
        assert r.json()["tags"] == []
        assert (await client.get(f"/api/v1/servers/{sid}", headers=owner.headers)).json()["tags"] == []
