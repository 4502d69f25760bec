"""The stream processors' error root. Third-party errors are translated once, where they arise."""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """An exception as a dead letter's or a log line's reason: its type and its message."""
    return f"{type(exc).__name__}: {exc}"


class ProcessorError(Exception):
    """Root of the processors' errors. `retriable`: the same operation may succeed later."""

    retriable: bool = False


class DatabaseUnavailable(ProcessorError):
    """The database could not be reached or the transaction failed for a transient reason
    (connection lost, pool timeout, serialization failure, deadlock): retry the same batch."""

    retriable = True


class DatabaseRejected(ProcessorError):
    """The database refused the data itself (a value it cannot store): retrying the same rows
    fails again, so the batch is split to isolate the message at fault."""

    retriable = False


class WritePathBroken(ProcessorError):
    """A message could not be written, and neither could a reference message of its kind: the
    fault is the system's (a bug, a broken migration, a codec), not the message's. Nothing is
    dead-lettered; the batch is read again after a capped backoff until the write path works."""

    retriable = True
