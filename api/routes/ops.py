"""Liveness, readiness and Prometheus metrics (outside `/api/v1`, unauthenticated, no data)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..db.errors import DatabaseError
from ..db.pool import ping
from ..deps import ResourcesDep
from ..errors import ApiError

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency is unreachable"}})
async def ready(resources: ResourcesDep) -> JSONResponse:
    """Readiness: the database and Kafka both answer."""
    checks: dict[str, str] = {}
    try:
        await ping(resources.pool)
        checks["database"] = "ok"
    except (DatabaseError, OSError) as exc:
        checks["database"] = f"unreachable: {exc}"
    try:
        await resources.producer.ping()
        checks["kafka"] = "ok"
    except ApiError as exc:
        checks["kafka"] = exc.detail
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
async def metrics(resources: ResourcesDep) -> Response:
    return Response(resources.metrics.render(), media_type=CONTENT_TYPE_LATEST)
