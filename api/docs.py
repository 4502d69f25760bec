"""`/docs` (Swagger UI) and `/redoc` served with their assets from the API itself: the pages
work on a LAN with no internet. `/problems/{kind}` describes each kind of error answer (the
`type` of a problem details body resolves to it). The assets (Swagger UI's bundle and CSS, ReDoc's standalone
bundle) come from the `fastapi-offline` package, pinned in constraints.txt; only its static
folder is used. No page references another host: no CDN, no web fonts, no validator badge.
"""

from __future__ import annotations

import html
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from schemas.problems import KINDS, TYPE_PREFIX

from .errors import NotFound

ASSETS_URL = "/docs-assets"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Add `/docs`, its OAuth2 redirect page and `/redoc` to an app built with
    `docs_url=None, redoc_url=None`, with the assets mounted under `ASSETS_URL`."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    title = app.title
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # No validator badge: it would send the document to an outside validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto;line-height:1.5}}
code{{background:#f2f2f2;padding:0 .2em}}td,th{{text-align:left;padding:.2em .6em}}</style>
</head><body>{body}</body></html>
"""


def _code(text: str) -> str:
    """Escaped text with its `backquoted` parts as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def problems_index_html() -> str:
    rows = "".join(
        f'<tr><td><a href="{TYPE_PREFIX}{k.slug}"><code>{TYPE_PREFIX}{k.slug}</code></a></td>'
        f"<td>{k.status}</td><td>{html.escape(k.title)}</td></tr>"
        for k in KINDS.values()
    )
    body = (
        "<h1>FleetPulse problem types</h1><p>Every error answer of the API is problem details "
        "(RFC 9457, <code>application/problem+json</code>); its <code>type</code> is one of these.</p>"
        f"<table><tr><th>type</th><th>status</th><th>title</th></tr>{rows}</table>"
    )
    return _PAGE.format(title="FleetPulse problem types", body=body)


def install_problem_pages(app: FastAPI) -> None:
    """`GET /problems` (the catalogue) and `GET /problems/{slug}` (one kind), out of the schema."""

    @app.get(TYPE_PREFIX.rstrip("/"), include_in_schema=False)
    async def problem_types() -> HTMLResponse:
        return HTMLResponse(problems_index_html())

    @app.get(TYPE_PREFIX + "{slug}", include_in_schema=False)
    async def problem_type(slug: str) -> HTMLResponse:
        kind = KINDS.get(slug)
        if kind is None:
            raise NotFound(f"no problem type {slug!r}")
        body = (
            f"<h1>{html.escape(kind.title)}</h1><p><code>{TYPE_PREFIX}{kind.slug}</code>, "
            f"HTTP {kind.status}</p><p>{_code(kind.description)}</p>"
            f'<p><a href="{TYPE_PREFIX.rstrip("/")}">Every problem type</a></p>'
        )
        return HTMLResponse(_PAGE.format(title=html.escape(kind.title), body=body))
