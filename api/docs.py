"""`/docs` (Swagger UI) and `/redoc` served with their assets from the API itself: the pages
work on a LAN with no internet. `/problems/{kind}` describes each kind of error answer (the
`type` of a problem details body resolves to it). `/asyncapi.json` is the sockets' AsyncAPI 3
document and `/asyncapi` the same as a page. The assets (Swagger UI's bundle and CSS, ReDoc's standalone
bundle) come from the `fastapi-offline` package, pinned in constraints.txt; only its static
folder is used. No page references another host: no CDN, no web fonts, no validator badge.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, JSONResponse, Response

from schemas import asyncapi
from schemas.problems import KINDS, TYPE_PREFIX

from .errors import NotFound

ASSETS_URL = "/docs-assets"

REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def _hashes(pattern: re.Pattern[str], body: str) -> str:
    """The CSP source of each inline element `pattern` finds in `body`, by its SHA-256."""
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
        for text in pattern.findall(body)
    )


def with_csp(page: HTMLResponse) -> HTMLResponse:
    """The page with a Content-Security-Policy of its own: its inline scripts allowed by their
    hashes (and no other inline script), styles inline too (Swagger UI and ReDoc set styles at run
    time), images from data: URLs (Swagger UI's icons), workers from blob: (ReDoc's search);
    everything else as strict as the default (this origin only, never framed)."""
    hashes = _hashes(_INLINE_SCRIPT, bytes(page.body).decode())
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'; object-src 'none'"
    )
    return page


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Add `/docs`, its OAuth2 redirect page and `/redoc` to an app built with
    `docs_url=None, redoc_url=None`, with the assets mounted under `ASSETS_URL`."""
    redoc_bundle: list[bytes] = []

    # Before the static mount, so it is found first: ReDoc's bundle, with the one outside address
    # it loads (its logo, from a CDN, which the page's CSP refuses) pointed at our own icon.
    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        if not redoc_bundle:
            raw = (_assets_dir() / "redoc.standalone.js").read_bytes()
            redoc_bundle.append(raw.replace(REDOC_CDN_LOGO, f"{ASSETS_URL}/favicon.png".encode()))
        return Response(redoc_bundle[0], media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    title = app.title
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return with_csp(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                oauth2_redirect_url=redirect_url,
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                # No validator badge: it would send the document to an outside validator.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return with_csp(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return with_csp(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto;line-height:1.5}}
code{{background:#f2f2f2;padding:0 .2em}}td,th{{text-align:left;padding:.2em .6em}}</style>
</head><body>{body}</body></html>
"""


def static_page(html_text: str) -> HTMLResponse:
    """A page of its own making (no script, one inline style sheet): a Content-Security-Policy
    that allows that style sheet by its hash and nothing else at all."""
    page = HTMLResponse(html_text)
    page.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {_hashes(_INLINE_STYLE, html_text)}; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return page


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
        return static_page(problems_index_html())

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
        return static_page(_PAGE.format(title=html.escape(kind.title), body=body))


def _schema_html(name: str, schema: dict[str, Any]) -> str:
    text = html.escape(json.dumps(schema, indent=2))
    # Each reference a link to the schema it names, further down the page.
    text = re.sub(r"&quot;#/components/schemas/([\w.\-]+)&quot;", r'<a href="#\1">"\1"</a>', text)
    return f'<h3 id="{html.escape(name)}"><code>{html.escape(name)}</code></h3><pre>{text}</pre>'


def asyncapi_html(doc: dict[str, Any]) -> str:
    """The AsyncAPI document as one page: channels, what each direction carries, every schema."""
    messages = doc["components"]["messages"]
    parts = [
        f"<h1>{html.escape(doc['info']['title'])}</h1><p>{_code(doc['info']['description'])}</p>",
        '<p>AsyncAPI 3, machine-readable at <a href="/asyncapi.json"><code>/asyncapi.json</code></a>.</p>',
    ]
    for channel_id, channel in doc["channels"].items():
        parts.append(
            f"<h2><code>{html.escape(channel['address'])}</code></h2><p>{_code(channel['description'])}</p>"
        )
        for action in ("Receive", "Send"):
            operation = doc["operations"][f"{channel_id}{action}"]
            rows = []
            for ref in operation["messages"]:
                key = ref["$ref"].rsplit("/", 1)[-1]
                message = messages[channel["messages"][key]["$ref"].rsplit("/", 1)[-1]]
                schema = message["payload"]["$ref"].rsplit("/", 1)[-1]
                rows.append(
                    f"<tr><td><code>{html.escape(message['name'])}</code></td>"
                    f'<td><a href="#{html.escape(schema)}">{html.escape(schema)}</a></td>'
                    f"<td>{_code(message['summary'])}</td></tr>"
                )
            parts.append(
                f"<h4>{html.escape(operation['summary'])}</h4>"
                f"<table><tr><th>type</th><th>schema</th><th></th></tr>{''.join(rows)}</table>"
            )
    parts.append("<h2>Schemas</h2>")
    parts += [_schema_html(name, schema) for name, schema in doc["components"]["schemas"].items()]
    return _PAGE.format(title=html.escape(doc["info"]["title"]), body="".join(parts))


def install_asyncapi(app: FastAPI) -> None:
    """`GET /asyncapi.json` (the sockets' AsyncAPI 3 document, `schemas/asyncapi.py`) and
    `GET /asyncapi` (the same, rendered as a page with no asset from anywhere), out of the
    OpenAPI schema. Built once, at the app's creation."""
    doc = asyncapi.document()
    page = asyncapi_html(doc)

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(doc)

    @app.get("/asyncapi", include_in_schema=False)
    async def asyncapi_page() -> HTMLResponse:
        return static_page(page)
