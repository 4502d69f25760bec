"""The ingest package's errors: one root, with a `retriable` flag."""

from __future__ import annotations


class IngestError(Exception):
    """Root of ingest's errors. `retriable`: the same request may succeed later."""

    retriable: bool = False


class BrokerUnavailable(IngestError):
    """Kafka did not confirm in time (or refused): nothing was acknowledged, send it again."""

    retriable = True


class DatabaseUnavailable(IngestError):
    """PostgreSQL could not answer (key verification, presence)."""

    retriable = True
