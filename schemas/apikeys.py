"""API keys: their format, and how they are hashed and verified.

A key reads `fpk_<lookup>_<secret>`: `lookup` is a non-secret id (indexed, unique), `secret` is 32
random bytes. The database keeps the lookup id and HMAC-SHA256(pepper, secret), never the key, so
verifying a key is one indexed lookup plus one constant-time comparison. Keys are long random
secrets, so a fast keyed hash is enough: there is nothing to brute-force that a slow hash protects.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "fpk"
_LOOKUP_BYTES = 9  # 12 url-safe characters
_SECRET_BYTES = 32  # 43 url-safe characters
_FORMAT = re.compile(r"^fpk_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    lookup_id: str
    secret: str


def generate() -> tuple[str, ParsedKey]:
    """A new key: its plaintext (shown once) and its parts."""
    lookup = secrets.token_urlsafe(_LOOKUP_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{PREFIX}_{lookup}_{secret}", ParsedKey(lookup, secret)


def parse(key: str) -> ParsedKey | None:
    """The parts of a well-formed key, or None (a malformed key is simply not a valid key)."""
    match = _FORMAT.match(key)
    return ParsedKey(match.group(1), match.group(2)) if match else None


def hash_secret(pepper: bytes, secret: str) -> bytes:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).digest()


def verify(pepper: bytes, secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(pepper, secret), stored_hash)
