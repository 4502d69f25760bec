"""Property-based: any input to any operation of the OpenAPI document gets an answer below 500.

Requests are drawn from the document itself (every operation, its path and query parameters and
its JSON body schema), mixed with wrong types, out-of-range numbers and odd strings, and sent with
a valid token of a user who owns real resources, so the draws reach the routes' code and not only
their validation. A new route is fuzzed without any change here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.settings import CommonSettings
from tests.conftest import FULL, IN_CI

EXAMPLES = 400 if FULL else (120 if IN_CI else 200)

ODD_STRINGS = st.sampled_from(
    ["", " ", "0", "-1", "null", "%", "_", "\\", "'; DROP TABLE users; --", "\x00", "../../etc"]
) | st.integers(min_value=200, max_value=5000).map(lambda n: "é" * n)  # long ones, made (a literal would
# make the strategy's repr huge, and Hypothesis warns about that)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def from_schema(
    doc: dict[str, Any], schema: dict[str, Any], ids: list[str], depth: int = 0
) -> st.SearchStrategy[Any]:
    """Values that mostly fit the schema, sometimes not (the API must refuse those cleanly)."""
    schema = _resolve(doc, schema)
    wrong = ANY_JSON | ODD_STRINGS
    if depth > 4:
        return wrong
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([from_schema(doc, s, ids, depth + 1) for s in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | wrong
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    fitting: st.SearchStrategy[Any]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "uuid":
            fitting = st.sampled_from(ids) | st.uuids().map(str)
        elif fmt == "date-time":
            fitting = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat())
        else:
            # Just past the limit when it is small; long strings come from ODD_STRINGS (drawing
            # them character by character would exhaust Hypothesis's budget per example).
            fitting = st.text(max_size=min(int(schema.get("maxLength", 40)) + 2, 60))
    elif kind == "integer":
        fitting = st.integers(min_value=-(2**40), max_value=2**40)
    elif kind == "number":
        fitting = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers()
    elif kind == "boolean":
        fitting = st.booleans()
    elif kind == "null":
        fitting = st.none()
    elif kind == "array":
        fitting = st.lists(from_schema(doc, schema.get("items", {}), ids, depth + 1), max_size=4)
    elif kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fitting = st.fixed_dictionaries(
            {name: from_schema(doc, p, ids, depth + 1) for name, p in props.items() if name in required},
            optional={
                name: from_schema(doc, p, ids, depth + 1) for name, p in props.items() if name not in required
            },
        )
    else:
        fitting = wrong
    return st.one_of(fitting, fitting, fitting, wrong)  # mostly fitting


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, ops in doc["paths"].items()
        for method, operation in ops.items()
        if path not in ("/ready",)  # its 503 means "a dependency is down": not an input error
    ]


@pytest.fixture
def world(common_settings: CommonSettings, tmp_path: Path):
    """The API in a process of its own (`python -m api`): Hypothesis watches the global random
    state while it draws, and an API in this process (its Kafka clients back off with jitter)
    would change it under Hypothesis's feet."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "FLEETPULSE_ENV": "test",
        "FLEETPULSE_STATE_DIR": str(tmp_path / "state"),
        "FLEETPULSE_DATABASE_URL": common_settings.database_url,
        "FLEETPULSE_KAFKA_BOOTSTRAP": common_settings.kafka_bootstrap,
        "FLEETPULSE_TOPIC_PREFIX": common_settings.topic_prefix,
        "FLEETPULSE_API_PORT": str(port),
        "FLEETPULSE_API_LOGIN_ATTEMPTS": "100000",
        "FLEETPULSE_API_COMMANDS_PER_MINUTE": "100000",
    }
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "api.log").read_text()
                assert time.monotonic() < deadline, "the API did not start within 60 s"
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            owner = _register(client)
            server_id = client.post("/api/v1/servers", json={"name": "s"}, headers=owner).json()["id"]
            key = client.post("/api/v1/api-keys", json={"server_id": server_id}, headers=owner).json()
            rule = client.post(
                "/api/v1/alerts/rules",
                json={"server_id": server_id, "name": "r", "metric": "cpu", "threshold": 50},
                headers=owner,
            ).json()
            ids = [server_id, key["id"], rule["id"], str(uuid.uuid4())]
            yield client.get("/openapi.json").json(), client, owner, ids
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _register(client: httpx.Client) -> dict[str, str]:
    name = f"f{uuid.uuid4().hex[:10]}"
    body = {
        "email": f"{name}@example.com",
        "username": name,
        "password": "x" * 12,
        "password_confirm": "x" * 12,
    }
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_gets_a_server_error(
    world: tuple[dict[str, Any], httpx.Client, dict[str, str], list[str]], data: st.DataObject
) -> None:
    doc, client, owner, ids = world
    method, path, operation = data.draw(st.sampled_from(operations(doc)), label="operation")
    url = path
    query: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        value = data.draw(from_schema(doc, parameter.get("schema", {}), ids), label=parameter["name"])
        if parameter["in"] == "path":
            text = str(value) if value not in (None, "") else "x"
            url = url.replace("{" + parameter["name"] + "}", urllib.parse.quote(text, safe=""))
        elif parameter["in"] == "query" and (parameter.get("required") or data.draw(st.booleans())):
            if isinstance(value, (dict, list)) and not all(isinstance(v, (str, int, float)) for v in value):
                value = str(value)
            query[parameter["name"]] = value if not isinstance(value, dict) else str(value)
    kwargs: dict[str, Any] = {"params": {k: v for k, v in query.items() if v is not None}}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        kwargs["json"] = data.draw(from_schema(doc, content["application/json"]["schema"], ids), label="body")
    elif "application/x-www-form-urlencoded" in content:
        kwargs["data"] = {
            "username": data.draw(st.text(max_size=30)),
            "password": data.draw(st.text(max_size=30)),
        }
    headers = owner if data.draw(st.booleans(), label="authenticated") else {}
    try:
        response = client.request(method, url, headers=headers, **kwargs)
    except Exception as exc:
        print("DEBUGEXC", method, url, kwargs, repr(exc))
        raise
    assert response.status_code < 500, f"{method} {url} {kwargs}: {response.status_code} {response.text}"
