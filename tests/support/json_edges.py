"""JSON as a client may send it: literals that `json.dumps` refuses or rewrites (NaN, `1e309`, an
escaped lone surrogate) spelled as given, for the property tests of the edges."""

from __future__ import annotations

import json
from typing import Any


class Literal:
    """A JSON literal put into a document as is (NaN, 1e309, an escaped lone surrogate)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Literal) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def encode(document: Any, ascii_only: bool = True) -> bytes:
    """JSON text with every `Literal` spelled as given (and real NaN and infinities as JSON's
    unofficial `NaN`, `Infinity`, which parsers accept). Text is escaped to ASCII (`\\u00e9`, a
    surrogate pair for an emoji) unless `ascii_only` is false (then it is sent as UTF-8)."""
    literals: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Literal):
            key = f"@@literal-{len(literals)}@@"
            literals[json.dumps(key)] = value.text
            return key
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(document), allow_nan=True, ensure_ascii=ascii_only)
    for key, literal in literals.items():
        text = text.replace(key, literal)
    return text.encode()
