"""Alert rules deployed as code: rule functions registered with a decorator.

    from alerting.code import rule

    @rule(name="disk full within 6 hours", metric="disk_hours_to_full", comparison="lt",
          threshold=6, clear_threshold=12, for_seconds=300, severity="critical")
    def disk_hours_to_full(sample, memory):
        ...  # return {subject: value}; `memory` is this rule's JSON-compatible state per server

A module of rules is deployed by naming it, with its owner, in the alert engine's settings
(docs/alerts.md); the engine evaluates its rules on that owner's servers only. The functions go
through the same evaluation (pending duration, hysteresis, stable episode ids, snapshotted state)
as rules stored as data, and their events go to the same alerts topic.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from schemas.alerts import Comparison, Severity

from .errors import CodeRuleError
from .evaluation import RuleSpec, Signal

log = logging.getLogger(__name__)

_CODE_NAMESPACE = uuid.UUID("0c5d3e7a-2b1f-4a6e-8d9c-7f1e2a3b4c5d")
_REGISTERED: dict[str, list[RuleSpec]] = {}  # module name -> its rules, in definition order


def code_rule_id(module: str, name: str, owner_id: uuid.UUID) -> uuid.UUID:
    """A code rule's id: stable for as long as its module and function keep their names, and one
    per owner (two tenants deploying the same module have rules, states and episodes apart)."""
    return uuid.uuid5(_CODE_NAMESPACE, f"{module}:{name}:{owner_id}")


@dataclasses.dataclass(frozen=True, slots=True)
class Deployment:
    """One rules module deployed for one owner: `module@owner-uuid` in the engine's settings."""

    module: str
    owner_id: uuid.UUID

    @classmethod
    def parse(cls, text: str) -> Deployment:
        module, sep, owner = text.strip().rpartition("@")
        if not sep or not module:
            raise CodeRuleError(f"code rule deployment {text!r}: expected <module>@<owner uuid>")
        try:
            return cls(module, uuid.UUID(owner))
        except ValueError as exc:
            raise CodeRuleError(f"code rule deployment {text!r}: {owner!r} is not a user id") from exc

    def __str__(self) -> str:
        return f"{self.module}@{self.owner_id}"


def _guarded(fn: Signal, where: str) -> Signal:
    """A rule function that raises yields no value for that sample (logged): one rule's bug never
    stops the engine evaluating every other rule, nor makes it retry the batch forever."""

    @functools.wraps(fn)
    def signal(sample: Any, memory: dict[str, Any]) -> Mapping[str, float]:
        try:
            return fn(sample, memory)
        except Exception:
            log.exception("code rule %s raised on a sample of server %s", where, sample.server_id)
            return {}

    return signal


def rule(
    *,
    name: str,
    metric: str,
    comparison: Comparison,
    threshold: float,
    clear_threshold: float | None = None,
    for_seconds: float = 0.0,
    clear_for_seconds: float = 0.0,
    severity: Severity = "warning",
    version: str = "1",
) -> Callable[[Signal], Signal]:
    """Register a rule function `(sample, memory) -> {subject: value}` in its module.

    Bump `version` when the function's meaning changes: pending timers restart (open episodes
    stay open)."""

    def register(fn: Signal) -> Signal:
        module = getattr(fn, "__module__", "__main__")
        qualname = getattr(fn, "__qualname__", repr(fn))
        spec = RuleSpec(
            rule_id=code_rule_id(module, qualname, uuid.UUID(int=0)),  # per owner at deployment
            name=name,
            metric=metric,
            signal=_guarded(fn, f"{module}:{qualname}"),
            comparison=comparison,
            threshold=threshold,
            clear_threshold=clear_threshold,
            for_seconds=for_seconds,
            clear_for_seconds=clear_for_seconds,
            severity=severity,
            origin="code",
            version=version,
            extra={"function": qualname},
        )
        rules = _REGISTERED.setdefault(module, [])
        if any(r.rule_id == spec.rule_id for r in rules):
            raise CodeRuleError(f"rule {module}:{qualname} is registered twice")
        rules.append(spec)
        return fn

    return register


def load(module_name: str, owner_id: uuid.UUID) -> list[RuleSpec]:
    """Import a rules module and return its rules, deployed for `owner_id`: each rule has that
    owner and an id of its own for them, and the engine evaluates it on their servers only."""
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise CodeRuleError(f"cannot import rules module {module_name!r}: {exc}") from exc
    rules = _REGISTERED.get(module_name, [])
    if not rules:
        raise CodeRuleError(f"module {module_name!r} registers no rules (use @rule)")
    return [
        dataclasses.replace(
            spec, rule_id=code_rule_id(module_name, spec.extra["function"], owner_id), owner_id=owner_id
        )
        for spec in rules
    ]


def load_deployments(deployments: list[Deployment]) -> list[RuleSpec]:
    """Every rule of these deployments; a module deployed twice for one owner is refused."""
    seen: set[Deployment] = set()
    specs: list[RuleSpec] = []
    for deployment in deployments:
        if deployment in seen:
            raise CodeRuleError(f"code rule deployment {deployment} is listed twice")
        seen.add(deployment)
        specs.extend(load(deployment.module, deployment.owner_id))
    return specs
