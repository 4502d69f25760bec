"""The uvicorn options every FleetPulse server is started with, from its settings."""

from __future__ import annotations

import ipaddress
from typing import Any

from schemas.settings import CommonSettings, EdgeSettings

from .connections import ConnectionGuard, ConnectionLimits, protocols


def uvicorn_options(common: CommonSettings, edge: EdgeSettings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config`:

    - forwarded headers believed only from `FLEETPULSE_TRUSTED_PROXIES` (uvicorn's default trusts
      loopback, so anything on the machine, or a proxy that passes the header through, could
      choose its client address: the address rate limits and the audit trail rely on);
    - TLS from the certificate and key, when set;
    - the connection caps and the request-head deadline (`connections.py`), as uvicorn's
      protocol classes.
    """
    proxies = common.proxies
    exempt = [ipaddress.ip_network(p, strict=False) for p in proxies]
    guard = ConnectionGuard(
        ConnectionLimits(
            max_connections=edge.max_connections,
            max_per_address=edge.max_connections_per_address,
            head_timeout=edge.request_head_timeout,
        ),
        exempt=exempt,
    )
    http, ws = protocols(guard)
    options: dict[str, Any] = {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,  # never None: uvicorn would read FORWARDED_ALLOW_IPS
        "server_header": False,
        "http": http,
        "ws": ws,
    }
    if edge.tls_certfile is not None and edge.tls_keyfile is not None:
        options["ssl_certfile"] = str(edge.tls_certfile)
        options["ssl_keyfile"] = str(edge.tls_keyfile)
    return options
