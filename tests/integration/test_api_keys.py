"""API keys over HTTP: shown once, hashed at rest, `/me`, deactivate / delete / expiry each
announced on the key-revocations topic (on which ingest closes the agent's socket)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from aiokafka import AIOKafkaConsumer

from schemas import apikeys, topics
from schemas.canonical import KEY_REVOCATION, KeyRevocation
from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, create_server, register, running_api


async def _revocation(common: CommonSettings, key_id: str, within: float = 30.0) -> KeyRevocation:
    """The revocation of `key_id`, read from the start of the test namespace's topic."""
    consumer = AIOKafkaConsumer(
        topics.KEY_REVOCATIONS.name(common.topic_prefix),
        bootstrap_servers=common.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(within):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        revocation = KEY_REVOCATION.validate_json(record.value)
                        if str(revocation.key_id) == key_id:
                            assert record.key == key_id.encode()
                            return revocation
    finally:
        await consumer.stop()


async def test_key_lifecycle(common_settings: CommonSettings, db: psycopg.AsyncConnection) -> None:
    settings = api_settings(common_settings, key_expiry_sweep_seconds=0.5)
    async with running_api(settings) as (_, client):
        owner = await register(client)
        server_id = await create_server(client, owner)

        created = await client.post(
            "/api/v1/api-keys", json={"server_id": str(server_id), "name": "agent"}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        body = created.json()
        key, key_id = body["key"], body["id"]
        assert key.startswith("fpk_") and body["is_active"] and body["server_id"] == str(server_id)
        # The one-line install, on the request's own URL when no public URL is set.
        assert body["install_command"] == f"curl -fsSL http://api.test/install.sh | sudo sh -s -- --key {key}"

        # Shown once: the list never carries it, and the database holds only the HMAC of its secret.
        listed = await client.get(f"/api/v1/api-keys/server/{server_id}", headers=owner.headers)
        assert listed.status_code == 200 and "key" not in listed.json()[0] and key not in listed.text
        row = await (
            await db.execute(
                "SELECT lookup_id, secret_hash, api_keys::text FROM api_keys WHERE id = %s", (key_id,)
            )
        ).fetchone()
        assert row is not None
        parsed = apikeys.parse(key)
        assert parsed is not None
        lookup, secret = parsed.lookup_id, parsed.secret
        assert row[0] == lookup and secret not in row[2] and key not in row[2]
        pepper = common_settings.key_pepper.get_secret_value().encode()
        assert bytes(row[1]) == hmac.new(pepper, secret.encode(), hashlib.sha256).digest()

        # The agent's view of its own key.
        me = await client.get("/api/v1/api-keys/me", headers={"X-API-Key": key})
        assert me.status_code == 200 and me.json() == {
            "server_id": str(server_id),
            "key_id": key_id,
            "name": "agent",
            "is_active": True,
        }
        wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
        assert (
            await client.get("/api/v1/api-keys/me", headers={"X-API-Key": wrong_secret})
        ).status_code == 401

        # Deactivation: refused at once, and announced.
        off = await client.post(f"/api/v1/api-keys/{key_id}/deactivate", headers=owner.headers)
        assert off.status_code == 200 and off.json()["is_active"] is False and "key" not in off.json()
        assert (await client.get("/api/v1/api-keys/me", headers={"X-API-Key": key})).status_code == 401
        revocation = await _revocation(common_settings, key_id)
        assert revocation.reason == "deactivated" and revocation.server_id == server_id

        # Deletion.
        second = (
            await client.post("/api/v1/api-keys", json={"server_id": str(server_id)}, headers=owner.headers)
        ).json()
        assert (
            await client.delete(f"/api/v1/api-keys/{second['id']}", headers=owner.headers)
        ).status_code == 204
        assert (
            await client.get("/api/v1/api-keys/me", headers={"X-API-Key": second["key"]})
        ).status_code == 401
        assert (await _revocation(common_settings, second["id"])).reason == "deleted"

        # Expiry is enforced, and announced by the sweep within seconds.
        expires = datetime.now(UTC) + timedelta(seconds=6)  # room for a busy machine before /me
        third = await client.post(
            "/api/v1/api-keys",
            json={"server_id": str(server_id), "expires_at": expires.isoformat()},
            headers=owner.headers,
        )
        assert third.status_code == 201
        third_key, third_id = third.json()["key"], third.json()["id"]
        assert (await client.get("/api/v1/api-keys/me", headers={"X-API-Key": third_key})).status_code == 200
        revocation = await _revocation(common_settings, third_id)
        assert revocation.reason == "expired"
        assert datetime.now(UTC) >= expires
        assert (await client.get("/api/v1/api-keys/me", headers={"X-API-Key": third_key})).status_code == 401
        # The sweep marks the key revoked right after announcing it.
        async with asyncio.timeout(30):
            while True:
                cur = await db.execute(
                    "SELECT is_active, revoked_at FROM api_keys WHERE id = %s", (third_id,)
                )
                row = await cur.fetchone()
                assert row is not None
                if row[1] is not None:
                    break
                await asyncio.sleep(0.1)
        assert row[0] is False

        # An expiry in the past, or a server of someone else, is refused.
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = await client.post(
            "/api/v1/api-keys", json={"server_id": str(server_id), "expires_at": past}, headers=owner.headers
        )
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "expires_at"]
        r = await client.post(
            "/api/v1/api-keys", json={"server_id": str(uuid.uuid4())}, headers=owner.headers
        )
        assert r.status_code == 404

        # The audit trail has each change, with its server.
        rows = await (
            await db.execute(
                "SELECT action, status FROM audit_log "
                "WHERE user_id = %s AND path LIKE '/api/v1/api-keys%%' ORDER BY id",
                (owner.id,),
            )
        ).fetchall()
        assert [r[0] for r in rows if r[1] < 300] == [
            "create_key",
            "deactivate_key",
            "create_key",
            "delete_key",
            "create_key",
        ]


async def test_install_command_uses_the_public_url(common_settings: CommonSettings) -> None:
    settings = api_settings(common_settings, public_url="https://fleet.example.com/pulse/")
    async with running_api(settings) as (_, client):
        owner = await register(client)
        server_id = await create_server(client, owner)
        created = await client.post(
            "/api/v1/api-keys", json={"server_id": str(server_id)}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["install_command"] == (
            f"curl -fsSL https://fleet.example.com/pulse/install.sh | sudo sh -s -- --key {body['key']}"
        )
        # Shown once, like the key: the list never carries it.
        listed = await client.get(f"/api/v1/api-keys/server/{server_id}", headers=owner.headers)
        assert all("install_command" not in k and "key" not in k for k in listed.json())
