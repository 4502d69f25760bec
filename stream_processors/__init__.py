"""Stream processors: persistence to TimescaleDB, rollups, retention, alerts (faust-streaming)."""
