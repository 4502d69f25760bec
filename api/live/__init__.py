"""Frontend live sockets: one Kafka reader per API process, an in-process hub, history backfill.

`LiveService` (service.py) owns the reader and the hub for the API's lifespan; `routes.py` serves
`/api/v1/ws/metrics/{server_id}` and `/api/v1/ws/logs/{server_id}` (protocol: docs/live.md).
"""
