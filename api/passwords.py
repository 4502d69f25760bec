"""Password hashing with argon2id (memory-hard), and the list of common passwords new ones are
checked against. Hashing runs in a worker thread: it takes tens of milliseconds of CPU on purpose,
and must not stall the event loop."""

from __future__ import annotations

import asyncio
import functools
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile


@functools.cache
def common_passwords() -> frozenset[str]:
    """The common passwords (`common_passwords.txt`, lower-cased), read once, on first use."""
    text = (files("api") / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_common(password: str) -> bool:
    """NIST 800-63B 5.1.1.2: a new password is refused when it is a commonly used one (compared
    without case: `Password1` is as weak as `password1`)."""
    return password.lower() in common_passwords()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a miss costs what a wrong password costs."""
    return _hasher.hash("not-a-real-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)
