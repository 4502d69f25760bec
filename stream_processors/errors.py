"""The stream processors' error root. Third-party errors are translated once, where they arise."""

from __future__ import annotations


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
