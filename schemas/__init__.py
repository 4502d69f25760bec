"""The shared contract of FleetPulse: wire frames, topic names and payloads, settings.

This package imports no web or Kafka framework (pydantic, pydantic-settings and orjson only), so
every deployable and every test can depend on it.
"""
