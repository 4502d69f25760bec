"""Property-based: any input to any operation of the OpenAPI document gets an answer below 500.

Requests are drawn from the document itself (every operation, its path and query parameters and
its JSON body schema), mixed with wrong types, out-of-range numbers and odd strings (times at the
edges of the calendar with offsets, NaN, infinities and `1e309`, integers past 2^63, NUL and lone
surrogates), and sent with a valid token of a user who owns real resources, so the draws reach the
routes' code and not only their validation. A second test walks every operation with each of
those values in each of its parameters and body fields, one at a time, on one kept-alive
connection, and lists every answer of 500 or more (and every connection the server dropped). A
new route is fuzzed and walked without any change here."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from schemas.problems import PROBLEM_MEDIA_TYPE, Problem
from schemas.settings import CommonSettings
from tests.conftest import FULL, IN_CI
from tests.support.json_edges import Literal, encode
from tests.support.openapi_check import operation_for, unlisted

EXAMPLES = 400 if FULL else (120 if IN_CI else 200)
# A hang guard, not a time limit: the walk sends ~1,700 requests one by one, which took 88 s on a
# loaded 2-core machine and over 120 s (pytest's default here) on a more loaded one.
pytestmark = pytest.mark.timeout(900 if FULL else 480)

# Times at the edges of the calendar (with offsets that overflow once in UTC), and past the edges.
EDGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999-14:00",
    "9999-12-31",
    "1970-01-01T00:00:00Z",
]
# JSON literals a float field may get: non-finite ones (`1e309` parses as infinity), the extremes,
# a subnormal, and integers no 64-bit column holds.
EDGE_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-1e309",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "5e-324",
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775809",
]
# JSON string literals (escaped, as a client sends them): lone surrogates, NUL.
EDGE_STRINGS = ['"\\ud800"', '"x\\udfff"', '"a\\u0000b"']


EDGE_LITERALS = st.sampled_from([*EDGE_NUMBERS, *EDGE_STRINGS]).map(Literal)
ODD_STRINGS = st.sampled_from(
    ["", " ", "0", "-1", "null", "%", "_", "\\", "'; DROP TABLE users; --", "\x00", "../../etc", *EDGE_TIMES]
) | st.integers(min_value=200, max_value=5000).map(lambda n: "é" * n)  # long ones, made (a literal would
# make the strategy's repr huge, and Hypothesis warns about that)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | EDGE_LITERALS,
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
            fitting = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()) | st.sampled_from(
                EDGE_TIMES
            )
        else:
            # Just past the limit when it is small; long strings come from ODD_STRINGS (drawing
            # them character by character would exhaust Hypothesis's budget per example).
            fitting = st.text(max_size=min(int(schema.get("maxLength", 40)) + 2, 60))
    elif kind == "integer":
        fitting = st.integers(min_value=-(2**40), max_value=2**40) | st.sampled_from(
            [2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1]
        )
    elif kind == "number":
        fitting = st.floats(width=64) | st.integers() | EDGE_LITERALS
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
    kwargs: dict[str, Any] = {
        "params": {k: repr(v) if isinstance(v, Literal) else v for k, v in query.items()}
    }
    kwargs["params"] = {k: v for k, v in kwargs["params"].items() if v is not None}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = data.draw(from_schema(doc, content["application/json"]["schema"], ids), label="body")
        kwargs["content"] = encode(body)
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif "application/x-www-form-urlencoded" in content:
        kwargs["data"] = {
            "username": data.draw(st.text(max_size=30)),
            "password": data.draw(st.text(max_size=30)),
        }
    headers = {
        **kwargs.pop("headers", {}),
        **(owner if data.draw(st.booleans(), label="authenticated") else {}),
    }
    try:
        response = client.request(method, url, headers=headers, **kwargs)
    except httpx.InvalidURL:
        reject()  # the client refuses to send it (a query over 64 KiB): nothing reached the server
    assert response.status_code < 500, f"{method} {url} {kwargs}: {response.status_code} {response.text}"
    assert not_a_problem(response) is None, f"{method} {url} {kwargs}: {not_a_problem(response)}"
    assert listed_status(doc, method, url, response) is None, f"{method} {url} {kwargs}"


def not_a_problem(response: httpx.Response) -> str | None:
    """Why an error answer is not problem details (RFC 9457) of its own status; None when it is."""
    if response.status_code < 400:
        return None
    if response.headers.get("content-type") != PROBLEM_MEDIA_TYPE:
        return f"{response.status_code} as {response.headers.get('content-type')}: {response.text[:200]}"
    try:
        body = Problem.model_validate_json(response.content)
    except ValueError as exc:
        return f"{response.status_code}: not a problem body ({exc}): {response.text[:200]}"
    if body.status != response.status_code:
        return f"{response.status_code} whose body says status {body.status}"
    return None


def listed_status(doc: dict[str, Any], method: str, url: str, response: httpx.Response) -> str | None:
    """Why the answer is not one its operation lists (status, and a problem kind listed for it)."""
    operation = operation_for(doc, method, url)
    return None if operation is None else unlisted(operation, response)


# --- the walk: every operation, each edge value in each parameter and body field, one at a time ---


def _valid(doc: dict[str, Any], schema: dict[str, Any], ids: list[str], name: str = "") -> Any:
    """A value that fits `schema` (what a body holds around the one field being walked)."""
    schema = _resolve(doc, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(doc, o).get("type") != "null"]
            return _valid(doc, options[0], ids, name) if options else None
    if "allOf" in schema:
        return _valid(doc, schema["allOf"][0], ids, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "uuid":
            return ids[0]
        if fmt == "date-time":
            return datetime.now(UTC).isoformat()
        if "email" in name:
            return "someone@example.com"
        return "x" * max(int(schema.get("minLength", 1)), 12 if "password" in name else 1)
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1, 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            key: _valid(doc, value, ids, key)
            for key, value in props.items()
            if key in schema.get("required", [])
        }
    return None


def _fields(
    doc: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The paths of a body's properties, nested objects included (a backtest's `rule`)."""
    schema = _resolve(doc, schema)
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            yield from _fields(doc, option, path)
    for name, prop in schema.get("properties", {}).items():
        yield (*path, name)
        if len(path) < 2:
            yield from _fields(doc, prop, (*path, name))


def _object_at(doc: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    schema = _resolve(doc, schema)
    for part in path:
        props: dict[str, Any] = {}
        for option in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
            props.update(_resolve(doc, option).get("properties", {}))
        schema = _resolve(doc, props[part])
        options = [o for o in schema.get("anyOf", []) if _resolve(doc, o).get("type") != "null"]
        if options:
            schema = _resolve(doc, options[0])
    return schema


EDGE_QUERY = [*EDGE_TIMES, "NaN", "inf", "-inf", "1e309", "9223372036854775808", "18446744073709551616"]
EDGE_PATH = ["%00", "%ED%A0%80", "NaN", "1e309", "0001-01-01T00:00:00+01:00", "x" * 600]
SKIPPED_PATHS = ("/ready",)


def _request(query: dict[str, Any], body: Any, has_body: bool) -> dict[str, Any]:
    return {"params": query, "content": encode(body)} if has_body else {"params": query}


def walk(doc: dict[str, Any], ids: list[str]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, label, url, request kwargs) for every edge value in every place of every operation."""
    for method, path, operation in operations(doc):
        if path in SKIPPED_PATHS:
            continue
        params = operation.get("parameters", [])
        base_url = path
        base_query: dict[str, Any] = {}
        for p in params:
            if p["in"] == "path":
                value = _valid(doc, p.get("schema", {}), ids, p["name"])
                base_url = base_url.replace("{" + p["name"] + "}", str(value))
            elif p["in"] == "query" and p.get("required"):
                base_query[p["name"]] = _valid(doc, p.get("schema", {}), ids, p["name"])
        content = operation.get("requestBody", {}).get("content", {})
        body_schema = content.get("application/json", {}).get("schema")
        base_body = _valid(doc, body_schema, ids) if body_schema else None

        has_body = body_schema is not None

        for p in params:
            if p["in"] == "path":
                for value in EDGE_PATH:
                    url = path
                    for other in params:
                        if other["in"] == "path":
                            chosen = (
                                value
                                if other is p
                                else _valid(doc, other.get("schema", {}), ids, other["name"])
                            )
                            url = url.replace("{" + other["name"] + "}", str(chosen))
                    yield (
                        method,
                        f"{method} {path} path {p['name']}={value[:30]}",
                        url,
                        _request(base_query, base_body, has_body),
                    )
            elif p["in"] == "query":
                for value in EDGE_QUERY:
                    query = {**base_query, p["name"]: value}
                    yield (
                        method,
                        f"{method} {path} query {p['name']}={value}",
                        base_url,
                        _request(query, base_body, has_body),
                    )
        if body_schema is None:
            continue
        for field in _fields(doc, body_schema):
            schema = _object_at(doc, body_schema, field)
            kinds = {schema.get("type"), schema.get("format")} | {
                _resolve(doc, o).get("format") or _resolve(doc, o).get("type")
                for o in schema.get("anyOf", [])
            }
            values: list[Any] = [Literal("NaN"), Literal('"\\ud800"')]
            if "date-time" in kinds:
                values += [Literal(json.dumps(t)) for t in EDGE_TIMES]
            if kinds & {"number", "integer"}:
                values += [Literal(n) for n in EDGE_NUMBERS]
            if "string" in kinds:
                values += [Literal(t) for t in EDGE_STRINGS]
            if "object" in kinds and not schema.get("properties"):
                # Free-form JSON (a server's metadata): the edge values inside it, keys too.
                values += [{"k": Literal(v)} for v in ["NaN", "1e309", "18446744073709551616", *EDGE_STRINGS]]
                values += [{json.loads(t): 1} for t in EDGE_STRINGS]
            for value in values:
                body = copy.deepcopy(base_body)
                node: Any = body
                for part in field[:-1]:
                    if not isinstance(node.get(part), dict):
                        node[part] = _valid(
                            doc, _object_at(doc, body_schema, field[: field.index(part) + 1]), ids
                        )
                    node = node[part]
                node[field[-1]] = value
                label = f"{method} {path} body {'.'.join(field)}={value!r}"
                yield method, label, base_url, _request(base_query, body, has_body)


def test_every_operation_refuses_edge_values_without_a_server_error(
    world: tuple[dict[str, Any], httpx.Client, dict[str, str], list[str]],
) -> None:
    """Each value alone, so one finding does not hide the next; all findings listed at once."""
    doc, client, owner, ids = world
    failures: list[str] = []
    sent = 0
    for method, label, url, kwargs in walk(doc, ids):
        headers = {**owner, "Content-Type": "application/json"}
        sent += 1
        try:
            response = client.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            # The server dropped the kept-alive connection (after the previous answer): a failure
            # of its own; the request is sent again on a new connection for its own answer.
            failures.append(f"{label}: the kept-alive connection was dropped ({type(exc).__name__})")
            response = client.request(method, url, headers=headers, **kwargs)
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {response.text[:120]}")
        elif (why := not_a_problem(response) or listed_status(doc, method, url, response)) is not None:
            failures.append(f"{label}: {why}")
    print(f"{sent} requests walked, {len(failures)} server errors")
    assert sent > 500, "the walk found too few places: is the OpenAPI document complete?"
    assert failures == [], "\n".join(failures)
