"""The error root of the ops package."""


class OpsError(Exception):
    """A migration, topic or readiness step failed. `retriable` says whether trying again may help."""

    retriable: bool = False


class NotReady(OpsError):
    """A service did not answer before the deadline."""

    retriable = True


class MigrationError(OpsError):
    """A migration file failed to apply; nothing of it was committed."""
