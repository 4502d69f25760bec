"""The HTTP edge shared by FleetPulse's servers (the API, ingest, the one-process server): how
uvicorn is configured (trusted proxies, TLS, connection caps, the request-head deadline), and the
ASGI middleware every answer passes (security headers, body size limits).

It imports only `schemas/` and the web stack (uvicorn, Starlette); the API and ingest both import
it and still import nothing of each other.
"""
