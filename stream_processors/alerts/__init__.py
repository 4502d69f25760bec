"""The alert engine: rules evaluated inside the stream, rules deployed as code, backtests and notifications.

`evaluation` (pure) is the one place rules are evaluated; `engine` runs it in faust over the
metrics topic, `code` runs decorator-registered rule functions the same way, `backtest` replays
it over stored history, and `notifier` delivers the resulting episodes to owners' channels.
Only `engine`, `notifier` and `code` import faust.
"""
