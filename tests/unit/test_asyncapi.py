"""The AsyncAPI document (schemas/asyncapi.py) against real frames: every frame the shared agent
vectors call valid is accepted by a message of the agent channel in its direction (JSON Schema,
not pydantic), so the document describes what the socket really takes and sends; so are frames of
the frontend sockets. Every reference in the document resolves."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from schemas.agent_wire import AGENT_FRAME, SERVER_FRAME
from schemas.asyncapi import document
from schemas.frontend_wire import CLIENT_FRAME
from schemas.frontend_wire import SERVER_FRAME as LIVE_SERVER_FRAME
from tests.support.vectors import ids, load

DOC = document()
AGENT_CASES = [c for c in load("agent_frames") if c["valid"]]
SERVER_CASES = [c for c in load("server_frames") if c["valid"]]
NOW = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
SERVER = "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65"
# Frames of the frontend sockets as the server and a browser send them (each also decoded by the
# server's own models below, so they are real frames, not ones written to fit the document).
LIVE_CLIENT: list[dict[str, Any]] = [
    {"type": "auth", "token": "eyJ.a.b", "window_seconds": 600, "resolution": "1m"},
    {"type": "auth", "token": "eyJ.a.b", "resume": {"partition": 2, "offset": 41}},
    {"type": "ping", "id": 1},
]
LIVE_SERVER: list[dict[str, Any]] = [
    {"type": "auth_success", "server_id": SERVER, "channel": "metrics", "expires_at": NOW},
    {"type": "auth_success", "server_id": None, "channel": "fleet", "expires_at": NOW, "servers": 3},
    {"type": "auth_required", "expires_at": NOW},
    {"type": "history_end", "position": {"partition": 0, "offset": -1}},
    {"type": "history_lost", "requested": None, "position": None, "reason": "resume refused"},
    {"type": "coalesced", "skipped": 4},
    {"type": "fleet_changed"},
    {"type": "error", "message": "not found", "code": 4404},
    {"type": "pong", "id": 1},
]


def _resolver_schema(name: str) -> dict[str, Any]:
    """A message payload as a standalone JSON schema: the document's components as its `$defs`."""
    return {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}


def _accepting(operation: str, frame: dict[str, Any]) -> list[str]:
    """The messages of the operation that accept the frame."""
    found = []
    for ref in DOC["operations"][operation]["messages"]:
        _, _, channel, _, key = ref["$ref"].split("/")
        message_ref = DOC["channels"][channel]["messages"][key]["$ref"]
        message = DOC["components"]["messages"][message_ref.rsplit("/", 1)[-1]]
        name = message["payload"]["$ref"].rsplit("/", 1)[-1]
        if jsonschema.Draft202012Validator(_resolver_schema(name)).is_valid(frame):
            found.append(message["name"])
    return found


@pytest.mark.parametrize("case", AGENT_CASES, ids=ids(AGENT_CASES))
def test_recorded_agent_frames_match_the_document(case: dict[str, Any]) -> None:
    AGENT_FRAME.validate_json(json.dumps(case["frame"]))
    assert case["frame"]["type"] in _accepting("agentReceive", case["frame"])


@pytest.mark.parametrize("case", SERVER_CASES, ids=ids(SERVER_CASES))
def test_recorded_server_frames_match_the_document(case: dict[str, Any]) -> None:
    SERVER_FRAME.validate_json(json.dumps(case["frame"]))
    assert case["frame"]["type"] in _accepting("agentSend", case["frame"])


@pytest.mark.parametrize("frame", LIVE_CLIENT, ids=lambda f: f["type"])
def test_frontend_client_frames_match_the_document(frame: dict[str, Any]) -> None:
    CLIENT_FRAME.validate_python(frame)
    for channel in ("liveMetrics", "liveLogs", "liveFleet"):
        assert _accepting(f"{channel}Receive", frame) == [frame["type"]]


@pytest.mark.parametrize("frame", LIVE_SERVER, ids=lambda f: f["type"])
def test_frontend_server_frames_match_the_document(frame: dict[str, Any]) -> None:
    LIVE_SERVER_FRAME.validate_json(json.dumps(frame))
    assert _accepting("liveMetricsSend", frame) == [frame["type"]]


def test_the_document_refuses_what_the_socket_refuses() -> None:
    # The checks are not vacuous: a frame of the other direction, a wrong type, a missing field.
    assert _accepting("agentReceive", {"type": "ack", "seq": 1}) == []
    assert _accepting("agentSend", {"type": "ack", "seq": "one"}) == []
    assert _accepting("liveFleetReceive", {"type": "auth"}) == []


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*([value["$ref"]] if "$ref" in value else []), *(r for v in value.values() for r in _refs(v))]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_every_reference_resolves_and_every_frame_type_has_a_message() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    for ref in _refs(DOC):
        node: Any = DOC
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # a KeyError names the reference that does not resolve
        assert isinstance(node, dict), ref
    agent_types = {c["frame"]["type"] for c in load("agent_frames") if c["valid"]}
    names = {m["name"] for m in DOC["components"]["messages"].values()}
    assert agent_types <= names
    assert {f["type"] for f in LIVE_SERVER} <= names
