"""Liveness, readiness and Prometheus metrics (outside `/api/v1`, unauthenticated, no data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from schemas.problems import KINDS

from .. import errors
from ..db.errors import DatabaseError
from ..db.pool import ping
from ..deps import ResourcesDep
from ..errors import ApiError

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request, resources: ResourcesDep) -> JSONResponse:
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
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", **checks})
    down = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
    # Not ready is an error answer like any other (problem details), the checks as extensions.
    return errors.answer(request.scope, KINDS["unavailable"], f"not ready: {down}", extensions=checks)


@router.get("/metrics", response_class=Response)
async def metrics(resources: ResourcesDep) -> Response:
    return Response(resources.metrics.render(), media_type=CONTENT_TYPE_LATEST)
