"""The alert processors: the live engine and the notifier, each an aiokafka consumer group.

The rules themselves are evaluated by the pure package `alerting` (evaluation, episode ids, rules
as code, the backtest's replay). Here: `consumer` (the engine: batches, its own changelog,
rebalances), `engine` (what a batch or a clock tick does to the states in memory), `health`
(stall detection), `rules` (the rules topic), `notifier` and `delivery` (episodes to the owners'
channels), `service` (their wiring into a faust app, which only hosts them).
"""
