"""A small client of FleetPulse's REST API: what `fleetpulse`, `make run` and the benchmarks need.

Standard library only (urllib), so it installs with the agent on any Python from 3.9: each call
runs on a worker thread and is awaited. Shapes follow docs/api.md: register / login give tokens;
servers, API keys (the plaintext key only in the creation answer), alert rules and episodes,
commands. An expired access token is refreshed once, transparently, with the refresh token, and
`on_tokens` (if given) is told so the caller can keep the new pair.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from .errors import AgentError

API = "/api/v1"


class RestError(AgentError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retriable = status is None or status >= 500


def _detail(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace")
    return data.get("detail", data) if isinstance(data, dict) else data


class RestClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 15.0,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_tokens: Callable[[dict[str, Any]], None] | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.on_tokens = on_tokens
        self._ssl = ssl.create_default_context(cafile=ca_file) if self.base_url.startswith("https:") else None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        return None  # no pooled connections: each call opens and closes its own

    # -- transport -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        url = self.base_url + API + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth and self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout, context=self._ssl) as resp:  # noqa: S310
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RestError(f"{method} {url}: {reason}") from exc

    async def _call(
        self, method: str, path: str, *, expect: tuple[int, ...] = (200,), retry_auth: bool = True, **kw: Any
    ) -> Any:
        status, body = await asyncio.to_thread(lambda: self._request(method, path, **kw))
        if status == 401 and retry_auth and self.refresh_token and kw.get("auth", True):
            await self.refresh()
            return await self._call(method, path, expect=expect, retry_auth=False, **kw)
        if status not in expect:
            raise RestError(f"{method} {API}{path} answered {status}: {_detail(body)}", status)
        return json.loads(body) if body else None

    def _take_token(self, token: dict[str, Any]) -> dict[str, Any]:
        self.access_token = token["access_token"]
        self.refresh_token = token.get("refresh_token", self.refresh_token)
        if self.on_tokens is not None:
            self.on_tokens(token)
        return token

    # -- accounts --------------------------------------------------------------------------------

    async def register(self, email: str, username: str, password: str, full_name: str | None = None) -> Any:
        body = {
            "email": email,
            "username": username,
            "full_name": full_name,
            "password": password,
            "password_confirm": password,
        }
        token = await self._call("POST", "/auth/register", json_body=body, expect=(201,), auth=False)
        return self._take_token(token)

    async def login(self, email: str, password: str) -> Any:
        form = {"username": email, "password": password}
        token = await self._call("POST", "/auth/login", form=form, auth=False, retry_auth=False)
        return self._take_token(token)

    async def refresh(self) -> str:
        if not self.refresh_token:
            raise RestError("the session expired: sign in again (fleetpulse login)", 401)
        token = await self._call(
            "POST",
            "/auth/refresh",
            json_body={"refresh_token": self.refresh_token},
            auth=False,
            retry_auth=False,
        )
        self._take_token(token)
        return str(self.access_token)

    async def me(self) -> Any:
        return await self._call("GET", "/auth/me")

    # -- servers and keys ------------------------------------------------------------------------

    async def servers(self) -> list[dict[str, Any]]:
        return _items(await self._call("GET", "/servers"))

    async def create_server(
        self, name: str, host: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Any:
        body = {"name": name, "host": host, "metadata": metadata or {}}
        return await self._call("POST", "/servers", json_body=body, expect=(201,))

    async def find_server(self, name_or_id: str) -> dict[str, Any]:
        servers = await self.servers()
        for s in servers:
            if str(s["id"]) == name_or_id or s["name"] == name_or_id:
                return s
        names = ", ".join(sorted(str(s["name"]) for s in servers)) or "none"
        raise RestError(f"no server {name_or_id!r} visible to this account (servers: {names})", 404)

    async def create_key(self, server_id: str, name: str | None = None) -> Any:
        return await self._call(
            "POST", "/api-keys", json_body={"server_id": server_id, "name": name}, expect=(201,)
        )

    async def keys(self, server_id: str) -> list[dict[str, Any]]:
        return _items(await self._call("GET", f"/api-keys/server/{server_id}"))

    async def revoke_key(self, key_id: str) -> Any:
        return await self._call("POST", f"/api-keys/{key_id}/deactivate")

    # -- alerts ----------------------------------------------------------------------------------

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
        return await self._call("POST", "/alerts/thresholds", json_body=body, expect=(200, 201))

    async def thresholds(self) -> list[dict[str, Any]]:
        return _items(await self._call("GET", "/alerts/thresholds"))

    async def create_rule(self, body: dict[str, Any]) -> Any:
        return await self._call("POST", "/alerts/rules", json_body=body, expect=(201,))

    async def rules(self, server_id: str | None = None) -> list[dict[str, Any]]:
        return _items(await self._call("GET", "/alerts/rules", params={"server_id": server_id}))

    async def alerts(
        self, server_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params = {"server_id": server_id, "state": state, "limit": limit}
        return _items(await self._call("GET", "/alerts", params=params))

    # -- commands --------------------------------------------------------------------------------

    async def run_command(self, server_id: str, command: str, timeout_seconds: float | None = None) -> Any:
        body: dict[str, Any] = {"command": command}
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        # The answer comes when the command ends: wait for its timeout (the API's default is 30 s),
        # plus the round trip through Kafka and the agent.
        wait = max(self.timeout, (timeout_seconds or 30.0) + 15.0)
        return await self._call("POST", f"/commands/{server_id}", json_body=body, timeout=wait)


def _items(result: Any) -> list[dict[str, Any]]:
    items = result.get("items", result) if isinstance(result, dict) else result
    return list(items or [])
