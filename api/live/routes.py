"""The frontend socket routes: `/api/v1/ws/metrics/{server_id}`, `/api/v1/ws/logs/{server_id}`
and `/api/v1/ws/fleet`.

`server_id` is taken as text so a malformed id gets the protocol's error frame and close code
(the same "server not found" as a foreign server), not a bare handshake refusal.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from api.deps import get_resources, get_settings

from .fleet_session import FleetSession
from .service import LiveService
from .session import Kind, LiveSession

router = APIRouter(tags=["live"])

LIVE_KEY = "live"  # the LiveService in `Resources.extras`


async def _serve(websocket: WebSocket, kind: Kind, server_id: str) -> None:
    resources = get_resources(websocket)
    service: LiveService = resources.extras[LIVE_KEY]
    session = LiveSession(websocket, kind, server_id, service, resources.pool, get_settings(websocket))
    await session.run()


@router.websocket("/ws/metrics/{server_id}")
async def metrics_socket(websocket: WebSocket, server_id: str) -> None:
    await _serve(websocket, "metrics", server_id)


@router.websocket("/ws/logs/{server_id}")
async def logs_socket(websocket: WebSocket, server_id: str) -> None:
    await _serve(websocket, "logs", server_id)


@router.websocket("/ws/fleet")
async def fleet_socket(websocket: WebSocket) -> None:
    """Every server the user can see: coalesced `fleet_update` frames, status changes, alerts."""
    resources = get_resources(websocket)
    service: LiveService = resources.extras[LIVE_KEY]
    await FleetSession(websocket, service, resources.pool, get_settings(websocket)).run()
