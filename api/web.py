"""The dashboard: the single-page app built from `web/` (Vite writes it to `web/dist`), served by
the API at `/` so a browser needs nothing but this origin (no CDN, works on a LAN).

- `/assets/*` are content-hashed files: cached for a year, `immutable`.
- Any other GET that matches no route (a client route such as `/servers/<id>?tab=logs`) answers
  `index.html`, revalidated on every load (`no-cache`), with a strict Content-Security-Policy:
  the page has no inline script or style and never evaluates strings. Paths under `/api/` and
  paths with a file extension that is not in the build keep their plain 404.

The fallback is an exception handler for the router's own 404 ("no route matched"), not a
catch-all route, so routes added after the app is built (ingest's, in one-process mode) are
still found first.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"
IMMUTABLE = "public, max-age=31536000, immutable"
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# Where the API's own paths live: a miss there is the API's 404, never the page.
RESERVED_PREFIXES = ("/api/", "/ingest/", "/assets/")

DEFAULT_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


class HashedAssets(StaticFiles):
    """Vite's output under `assets/`: every name carries its content hash, so it never changes."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI, dist: Path | None) -> None:
    """Serve the build in `dist` (default: the checkout's `web/dist`) at `/`."""
    root = (dist or DEFAULT_DIST).resolve()
    app.mount("/assets", HashedAssets(directory=root / "assets", check_dir=False), name="web-assets")

    # Every answer that is not the page stays the API's own error (problem details, api/errors.py).
    previous = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)

    async def api_error(request: Request, exc: StarletteHTTPException) -> Any:
        answer = previous(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Any:
        unmatched = exc.status_code == 404 and "endpoint" not in request.scope
        if not unmatched or request.method not in ("GET", "HEAD"):
            return await api_error(request, exc)
        path = request.url.path
        if path.startswith(RESERVED_PREFIXES):
            return await api_error(request, exc)
        name = path.rsplit("/", 1)[-1]
        if "." in name:
            # A top-level file of the build (favicon.svg), else the plain 404.
            candidate = (root / path.lstrip("/")).resolve()
            if candidate.parent == root and candidate.is_file() and candidate.name != "index.html":
                return FileResponse(candidate, headers={"Cache-Control": "public, max-age=86400"})
            return await api_error(request, exc)
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(
                "The dashboard is not built here: `make web` builds it (`make run` does it for you).\n",
                status_code=404,
            )
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
