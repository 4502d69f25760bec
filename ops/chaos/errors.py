"""The chaos runner's one error root."""

from __future__ import annotations


class ChaosError(Exception):
    """The run could not be carried out (a service did not start, a step timed out). A loss or a
    duplicate found by the run is not an error: it is the run's result, in its report."""

    retriable = False
