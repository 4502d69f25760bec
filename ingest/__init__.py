"""Ingest: the agents' WebSocket endpoint, durable into Kafka."""
