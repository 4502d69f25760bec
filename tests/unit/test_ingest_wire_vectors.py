"""The server's side of the shared agent-socket vectors: schemas/agent_wire.py accepts exactly the
frames they call valid (the agent's side is tests/unit/test_agent_wire.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.agent_wire import AGENT_FRAME, SERVER_FRAME
from tests.support.vectors import ids, load

AGENT_CASES = load("agent_frames")
SERVER_CASES = load("server_frames")


@pytest.mark.parametrize("case", AGENT_CASES, ids=ids(AGENT_CASES))
def test_agent_frames(case: dict[str, Any]) -> None:
    raw = json.dumps(case["frame"])
    if case["valid"]:
        frame = AGENT_FRAME.validate_json(raw)
        assert frame.type == case["frame"]["type"]
    else:
        with pytest.raises(ValidationError):
            AGENT_FRAME.validate_json(raw)


@pytest.mark.parametrize("case", SERVER_CASES, ids=ids(SERVER_CASES))
def test_server_frames(case: dict[str, Any]) -> None:
    raw = json.dumps(case["frame"])
    if case["valid"]:
        frame = SERVER_FRAME.validate_json(raw)
        # What the server itself sends encodes back to the same JSON (absent fields left out).
        assert json.loads(frame.to_bytes()).items() >= {k: v for k, v in case["frame"].items()}.items()
    else:
        with pytest.raises(ValidationError):
            SERVER_FRAME.validate_json(raw)
