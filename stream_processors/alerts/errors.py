"""Errors of the alert engine. `retriable`: the same operation may succeed later."""

from __future__ import annotations


class AlertError(Exception):
    """Root of the alert engine's errors."""

    retriable: bool = False


class DeliveryFailed(AlertError):
    """A notification could not be delivered (retriable: a later attempt may succeed)."""

    retriable = True

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
