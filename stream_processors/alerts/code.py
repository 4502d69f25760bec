"""Alert rules deployed as code: rule functions registered with a decorator, run as a processor.

    from stream_processors.alerts.code import rule

    @rule(name="disk full within 6 hours", metric="disk_hours_to_full", comparison="lt",
          threshold=6, clear_threshold=12, for_seconds=300, severity="critical")
    def disk_hours_to_full(sample, memory):
        ...  # return {subject: value}; `memory` is this rule's JSON-compatible state per server

Run a module's rules with one command (a faust worker of its own, named after the module):

    python -m stream_processors.alerts.code my_package.my_rules

The functions go through the same evaluation (pending duration, hysteresis, stable episode ids,
changelog-backed state) as rules stored as data, and their events go to the same alerts topic.
Importing this module does not import faust.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from typing import Any

from schemas.alerts import Comparison, Severity

from .errors import CodeRuleError
from .evaluation import RuleSpec, Signal

_CODE_NAMESPACE = uuid.UUID("0c5d3e7a-2b1f-4a6e-8d9c-7f1e2a3b4c5d")
_REGISTERED: dict[str, list[RuleSpec]] = {}  # module name -> its rules, in definition order


def code_rule_id(module: str, name: str) -> uuid.UUID:
    """A code rule's id: stable for as long as its module and function keep their names."""
    return uuid.uuid5(_CODE_NAMESPACE, f"{module}:{name}")


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
            rule_id=code_rule_id(module, qualname),
            name=name,
            metric=metric,
            signal=fn,
            comparison=comparison,
            threshold=threshold,
            clear_threshold=clear_threshold,
            for_seconds=for_seconds,
            clear_for_seconds=clear_for_seconds,
            severity=severity,
            origin="code",
            version=version,
        )
        rules = _REGISTERED.setdefault(module, [])
        if any(r.rule_id == spec.rule_id for r in rules):
            raise CodeRuleError(f"rule {module}:{qualname} is registered twice")
        rules.append(spec)
        return fn

    return register


def load(module_name: str) -> list[RuleSpec]:
    """Import a rules module and return the rules it registered."""
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise CodeRuleError(f"cannot import rules module {module_name!r}: {exc}") from exc
    rules = _REGISTERED.get(module_name, [])
    if not rules:
        raise CodeRuleError(f"module {module_name!r} registers no rules (use @rule)")
    return list(rules)


def app_id_for(module_name: str) -> str:
    return "fleetpulse-alert-code-" + module_name.replace(".", "-").replace("_", "-")


def main(argv: list[str] | None = None) -> None:
    import sys

    from schemas.settings import CommonSettings

    from .service import create_alert_app
    from .settings import AlertSettings

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m stream_processors.alerts.code <rules.module> [faust args]")
    module_name, rest = args[0], args[1:]
    specs = load(module_name)
    common = CommonSettings()
    settings = AlertSettings()
    app: Any = create_alert_app(
        common,
        settings,
        app_id=app_id_for(module_name),
        web_port=settings.worker_web_port,
        code_rules=specs,
    )
    # faust's CLI parses sys.argv: run a worker unless a faust subcommand was given.
    sys.argv = [sys.argv[0], *(rest or ["worker"])]
    app.main()


if __name__ == "__main__":
    # Run as `-m`, this file is `__main__`; rules modules register into the importable module.
    from stream_processors.alerts.code import main as _main

    _main()
