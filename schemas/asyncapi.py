"""The AsyncAPI 3 document of the sockets, generated from their pydantic frames so it cannot drift.

Four channels: the agent socket (`schemas/agent_wire.py`, served by ingest, or by the one-process
server) and the three frontend sockets (`schemas/frontend_wire.py`, served by the API). Each
channel's messages are the members of the frame unions the server decodes (`AGENT_FRAME`,
`CLIENT_FRAME`: validation schemas) and encodes (`SERVER_FRAME`s: serialization schemas); each
channel has two operations, `receive` (what the server receives) and `send` (what it sends).
Payload schemas are the models' JSON schemas under `components.schemas`, each name prefixed by
its socket (`agent.`, `live.`). The API serves the document at `/asyncapi.json`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import TypeAdapter

from . import agent_wire, frontend_wire

ASYNCAPI_VERSION = "3.0.0"
Mode = Literal["validation", "serialization"]


def _schemas(adapter: TypeAdapter[Any], prefix: str, mode: Mode, into: dict[str, Any]) -> list[str]:
    """The union's members' schema names (each added to `into`, prefixed)."""
    schema = adapter.json_schema(mode=mode, ref_template=f"#/components/schemas/{prefix}.{{model}}")
    for name, component in schema.pop("$defs", {}).items():
        key = f"{prefix}.{name}"
        if key in into and into[key] != component:
            raise ValueError(f"two different schemas named {key}")  # pragma: no cover
        into[key] = component
    return [ref["$ref"].rsplit("/", 1)[-1] for ref in schema["oneOf"]]


def _message(schema_name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = schemas[schema_name]
    frame_type = schema.get("properties", {}).get("type", {})
    kind = frame_type.get("const", frame_type.get("default"))
    summary = (schema.get("description") or "").strip().split("\n\n")[0]
    return {
        "name": kind or schema_name,
        "title": schema_name.split(".", 1)[1],
        "summary": summary or f"a `{kind}` frame",
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{schema_name}"},
    }


def _channel(
    address: str,
    description: str,
    inbound: list[str],
    outbound: list[str],
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "description": description,
        "messages": {
            name.replace(".", "_"): {"$ref": f"#/components/messages/{name}"}
            for name in [*inbound, *outbound]
        },
    }
    if parameters:
        channel["parameters"] = parameters
    return channel


def _operations(channel: str, inbound: list[str], outbound: list[str], who: str) -> dict[str, Any]:
    def refs(names: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{name.replace('.', '_')}"} for name in names]

    return {
        f"{channel}Receive": {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"frames the server receives from {who}",
            "messages": refs(inbound),
        },
        f"{channel}Send": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"frames the server sends to {who}",
            "messages": refs(outbound),
        },
    }


SERVER_ID = {"server_id": {"description": "the server's id (a UUID); the user needs a role on it"}}


def document() -> dict[str, Any]:
    """The AsyncAPI 3 document (a new dict each call)."""
    schemas: dict[str, Any] = {}
    agent_in = _schemas(agent_wire.AGENT_FRAME, "agent", "validation", schemas)
    agent_out = _schemas(agent_wire.SERVER_FRAME, "agent", "serialization", schemas)
    live_in = _schemas(frontend_wire.CLIENT_FRAME, "live", "validation", schemas)
    live_out = _schemas(frontend_wire.SERVER_FRAME, "live", "serialization", schemas)
    messages = {
        name: _message(name, schemas) for name in dict.fromkeys([*agent_in, *agent_out, *live_in, *live_out])
    }
    live = "a dashboard or the `fleetpulse` command"
    channels = {
        "agent": _channel(
            "/api/v1/agents/ws",
            "The agent socket: an agent authenticates with its API key, streams metrics and logs "
            "(acknowledged once durable in Kafka) and runs the commands it is sent. Both dialects: "
            "the seed's and the legacy ChatOps one (docs/protocol.md).",
            agent_in,
            agent_out,
        ),
        "liveMetrics": _channel(
            "/api/v1/ws/metrics/{server_id}",
            "One server's metrics and alerts: history, then live, with positions to resume (docs/live.md).",
            live_in,
            live_out,
            SERVER_ID,
        ),
        "liveLogs": _channel(
            "/api/v1/ws/logs/{server_id}",
            "One server's logs and alerts: history, then live (docs/live.md).",
            live_in,
            live_out,
            SERVER_ID,
        ),
        "liveFleet": _channel(
            "/api/v1/ws/fleet",
            "Every server of the user, for the dashboard's fleet page (docs/live.md).",
            live_in,
            live_out,
        ),
    }
    operations = {
        **_operations("agent", agent_in, agent_out, "an agent"),
        **_operations("liveMetrics", live_in, live_out, live),
        **_operations("liveLogs", live_in, live_out, live),
        **_operations("liveFleet", live_in, live_out, live),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "FleetPulse sockets",
            "version": "1",
            "description": "The agent socket and the frontend sockets, generated from the pydantic "
            "frames of `schemas/agent_wire.py` and `schemas/frontend_wire.py`. The first frame on "
            "every socket is `auth`; errors are `error` frames and close codes (docs/protocol.md, "
            "docs/live.md).",
        },
        "servers": {
            "fleetpulse": {
                "host": "{host}",
                "protocol": "ws",
                "description": "the API (frontend sockets) and ingest (agent socket); one port with "
                "the one-process server. `wss` behind TLS.",
                "variables": {"host": {"default": "127.0.0.1:8000", "description": "host and port"}},
            }
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
