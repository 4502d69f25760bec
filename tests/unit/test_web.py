"""The dashboard's static serving: index.html for client routes under a strict CSP, hashed assets
cached for good, and the API's own 404s left alone. The app is built but its lifespan is not run
(no database or broker is needed to serve files)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from api.web import CSP, IMMUTABLE
from schemas.settings import CommonSettings, Environment


def client(tmp_path: Path, dist: Path) -> httpx.AsyncClient:
    common = CommonSettings(env=Environment.TEST, state_dir=tmp_path / "state")
    app = create_app(ApiSettings(common=common, web_dir=dist))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(
        '<!doctype html><script type="module" src="/assets/index-abc1.js"></script>'
    )
    (root / "assets" / "index-abc1.js").write_text("console.log(1)")
    (root / "favicon.svg").write_text("<svg/>")
    return root


@pytest.fixture
async def web(tmp_path: Path, dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with client(tmp_path, dist) as c:
        yield c


@pytest.mark.parametrize(
    "path", ["/", "/login", "/servers/0b5e6c9a-1f2d-4c3b-9a8e-7d6c5b4a3f21?tab=logs&range=7d", "/alerts"]
)
async def test_client_routes_answer_the_page_under_a_strict_csp(web: httpx.AsyncClient, path: str) -> None:
    answer = await web.get(path)
    assert answer.status_code == 200
    assert answer.text.startswith("<!doctype html>")
    assert answer.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP
    assert "unsafe" not in CSP
    assert answer.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_immutable_and_top_level_files_are_served(web: httpx.AsyncClient) -> None:
    asset = await web.get("/assets/index-abc1.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == IMMUTABLE
    assert (await web.get("/favicon.svg")).text == "<svg/>"
    assert (await web.get("/assets/missing-000.js")).status_code == 404


async def test_api_paths_and_missing_files_keep_their_404(web: httpx.AsyncClient) -> None:
    api_miss = await web.get("/api/v1/no-such-thing")
    assert api_miss.status_code == 404
    # Still the API's own error answer (problem details), not the page.
    assert api_miss.headers["content-type"].startswith("application/problem+json")
    assert api_miss.json()["status"] == 404
    assert (await web.get("/robots.txt")).status_code == 404
    assert (await web.get("/index.html")).status_code == 404  # only through a client route
    assert (await web.post("/")).status_code in (404, 405)  # only GET and HEAD get the page
    assert (await web.get("/openapi.json")).json()["info"]["title"] == "FleetPulse API"  # routes win


async def test_without_a_build_the_root_says_how_to_build_it(tmp_path: Path) -> None:
    async with client(tmp_path, tmp_path / "nothing-here") as c:
        answer = await c.get("/")
    assert answer.status_code == 404
    assert "make web" in answer.text


def test_the_image_builds_the_dashboard_and_points_the_api_at_it() -> None:
    """No Docker engine here: the Dockerfile is read for what the image must do."""
    dockerfile = (Path(__file__).resolve().parents[2] / "infra" / "Dockerfile").read_text()
    assert "FROM node:20" in dockerfile and " AS web" in dockerfile
    assert "npm ci" in dockerfile and "vite build" in dockerfile
    assert "COPY --from=web /web/dist ./web/dist" in dockerfile
    assert "FLEETPULSE_API_WEB_DIR=/app/web/dist" in dockerfile
    assert "web_dir" in ApiSettings.model_fields  # the variable is a real setting
