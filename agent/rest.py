"""A small client of FleetPulse's REST API: what `watch`, `make run` and the benchmarks need.

Shapes follow docs' REST table (the seed lineage's): register / login give a Token, servers, API
keys (the plaintext key only in the creation answer) and alert thresholds.
"""

from __future__ import annotations

from typing import Any

import httpx

from .errors import AgentError

API = "/api/v1"


class RestError(AgentError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retriable = status is None or status >= 500


class RestClient:
    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self.access_token: str | None = None
        self.refresh_token: str | None = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if self.access_token:
            headers.setdefault("Authorization", f"Bearer {self.access_token}")
        try:
            resp = await self._http.request(method, API + path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise RestError(f"{method} {self.base_url}{API}{path}: {exc}") from exc
        if resp.status_code not in expect:
            detail: Any
            try:
                detail = resp.json().get("detail")
            except ValueError:
                detail = resp.text[:300]
            raise RestError(f"{method} {API}{path} answered {resp.status_code}: {detail}", resp.status_code)
        return resp.json() if resp.content else None

    def _take_token(self, token: dict[str, Any]) -> dict[str, Any]:
        self.access_token = token["access_token"]
        self.refresh_token = token.get("refresh_token", self.refresh_token)
        return token

    async def register(self, email: str, username: str, password: str, full_name: str | None = None) -> Any:
        body = {
            "email": email,
            "username": username,
            "full_name": full_name,
            "password": password,
            "password_confirm": password,
        }
        return self._take_token(await self._call("POST", "/auth/register", json=body, expect=(201,)))

    async def login(self, email: str, password: str) -> Any:
        form = {"username": email, "password": password}
        return self._take_token(await self._call("POST", "/auth/login", data=form))

    async def refresh(self) -> str:
        self.access_token = None
        token = await self._call("POST", "/auth/refresh", json={"refresh_token": self.refresh_token})
        self._take_token(token)
        assert self.access_token is not None
        return self.access_token

    async def servers(self) -> list[dict[str, Any]]:
        result = await self._call("GET", "/servers")
        items = result.get("items", result) if isinstance(result, dict) else result
        return list(items)

    async def create_server(
        self, name: str, host: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Any:
        body = {"name": name, "host": host, "metadata": metadata or {}}
        return await self._call("POST", "/servers", json=body, expect=(201,))

    async def create_key(self, server_id: str, name: str | None = None) -> Any:
        return await self._call(
            "POST", "/api-keys", json={"server_id": server_id, "name": name}, expect=(201,)
        )

    async def create_threshold(
        self, server_id: str, metric_type: str, threshold_value: float, comparison: str = "gt"
    ) -> Any:
        body = {
            "server_id": server_id,
            "metric_type": metric_type,
            "threshold_value": threshold_value,
            "comparison": comparison,
            "enabled": True,
        }
        return await self._call("POST", "/alerts/thresholds", json=body, expect=(200, 201))

    async def thresholds(self) -> list[dict[str, Any]]:
        result = await self._call("GET", "/alerts/thresholds")
        items = result.get("items", result) if isinstance(result, dict) else result
        return list(items or [])

    async def find_server(self, name_or_id: str) -> dict[str, Any]:
        servers = await self.servers()
        for s in servers:
            if str(s["id"]) == name_or_id or s["name"] == name_or_id:
                return s
        names = ", ".join(sorted(str(s["name"]) for s in servers)) or "none"
        raise RestError(f"no server {name_or_id!r} visible to this account (servers: {names})", 404)
