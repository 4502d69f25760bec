"""Errors of the pure rule package. `retriable`: the same operation may succeed later."""

from __future__ import annotations


class AlertingError(Exception):
    """Root of the rule package's errors."""

    retriable: bool = False


class CodeRuleError(AlertingError):
    """A rules-as-code module is unusable (import failed, no rules, two rules with one id)."""
