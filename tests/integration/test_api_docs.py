"""`/docs` and `/redoc` work with no internet: their pages reference only the API's own paths,
and every asset they load is served by the API."""

from __future__ import annotations

import re

from schemas.settings import CommonSettings
from tests.support.api_client import api_settings, running_api

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""", re.I)


async def test_docs_and_redoc_load_everything_from_the_api(common_settings: CommonSettings) -> None:
    async with running_api(api_settings(common_settings)) as (_, client):
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            r = await client.get(page)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
            html = r.text
            # No absolute URL anywhere in the page: no CDN, no web fonts, no validator.
            assert _hosts(html) == [], (page, _hosts(html))
            for ref in _references(html):
                assert ref.startswith("/"), (page, ref)
                asset = await client.get(ref)
                assert asset.status_code == 200 and len(asset.content) > 1000, (page, ref)
        swagger = (await client.get("/docs")).text
        assert "/docs-assets/swagger-ui-bundle.js" in swagger and "/openapi.json" in swagger
        assert '"validatorUrl": null' in swagger
        redoc = (await client.get("/redoc")).text
        assert "/docs-assets/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc
        assert (await client.get("/openapi.json")).status_code == 200


def _strip_comments(html: str) -> str:
    return re.sub(r"<!--.*?-->", "", html, flags=re.S)


def _hosts(html: str) -> list[str]:
    """Every host named by an absolute or scheme-relative URL in the page."""
    return re.findall(
        r"(?:https?:)?//([\w.-]+\.[a-z]{2,}|localhost|\d+\.\d+\.\d+\.\d+)", _strip_comments(html)
    )


def _references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCE.findall(html) if (a or b) and not (a or b).startswith("data:")]
