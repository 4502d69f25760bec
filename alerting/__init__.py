"""Alert rules, pure: evaluation, episode ids, rules as code, the registry and the replay.

The one place rules are evaluated, shared by every deployable that needs it: the live engine in
`stream_processors.alerts` and the API's backtest. It imports only `schemas/` (and pydantic): no
framework, no Kafka, no database, no clock of its own, so the same samples in the same order give
the same events with the same episode ids wherever they are evaluated.

Modules: `evaluation` (the state machine and the built-in signals), `registry` (which rules
watch which server), `code` (rules written as Python functions), `replay` (history replayed into
episodes, for backtests), `errors` (the package's error root).
"""
