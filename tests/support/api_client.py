"""Run the API app in-process for tests: its real lifespan (pool, Kafka clients) and an httpx
client speaking ASGI to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from schemas.settings import CommonSettings


@asynccontextmanager
async def running_api(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=60) as client:
            yield app, client


def api_settings(common: CommonSettings, **overrides: Any) -> ApiSettings:
    return ApiSettings(common=common, db_pool_max=5, **overrides)


@dataclass
class TestUser:
    __test__ = False  # not a test class

    id: uuid.UUID
    email: str
    password: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def register(
    client: httpx.AsyncClient, name: str | None = None, password: str = "correct horse 1"
) -> TestUser:
    name = name or f"u{uuid.uuid4().hex[:12]}"
    email = f"{name}@example.com"
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "username": name, "password": password, "password_confirm": password},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return TestUser(
        id=uuid.UUID(body["user"]["id"]),
        email=email,
        password=password,
        access=body["access_token"],
        refresh=body["refresh_token"],
    )


async def create_server(client: httpx.AsyncClient, user: TestUser, name: str = "web-1") -> uuid.UUID:
    response = await client.post("/api/v1/servers", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])
