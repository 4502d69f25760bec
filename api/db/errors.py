"""The database layer's error root: what `pool.connection` turns asyncpg's errors into, so routes
never see asyncpg's own. `retriable`: the same operation may succeed later.

Apart from the HTTP errors of `api/errors.py` on purpose: a route catches these where it has an
answer of its own (a duplicate user is a 409), and the application answers the rest
(`InvalidData` 422, `DatabaseUnavailable` 503).
"""

from __future__ import annotations


class DatabaseError(Exception):
    retriable = False


class DuplicateError(DatabaseError):
    """A unique constraint refused the row (SQLSTATE 23505)."""


class InvalidData(DatabaseError):
    """The database refused a value (SQLSTATE class 22: a NUL character in text, a number out
    of its column's range, ...): the client's input, not our fault."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or the connection broke."""

    retriable = True
