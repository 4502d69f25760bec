"""The shared agent-socket test vectors (tests/vectors/agent_wire.json), expanded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "agent_wire.json"


def _expand(value: Any, index: int | None = None) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$text"}:
            char, n = value["$text"]
            return char * n
        if set(value) == {"$repeat"}:
            item, n = value["$repeat"]
            return [_expand(item, i) for i in range(n)]
        return {k: _expand(v, index) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, index) for v in value]
    if isinstance(value, str) and index is not None:
        return value.replace("{i}", str(index))
    return value


def load(section: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = _expand(json.loads(VECTORS.read_text())[section])
    return cases


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]
