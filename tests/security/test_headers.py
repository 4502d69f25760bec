"""Security headers on every answer (issue 14): nosniff, no framing, no referrer, a
Content-Security-Policy (strict by default; the API documentation pages allow only their own
inline scripts, by hash), and no HSTS over plain HTTP (the TLS suite checks it over https)."""

from __future__ import annotations

import pytest

from tests.security.conftest import Stack

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    "path", ["/health", "/api/v1/servers", "/api/v1/nowhere", "/docs", "/redoc", "/openapi.json"]
)
async def test_every_answer_carries_the_security_headers(stack: Stack, path: str) -> None:
    async with stack.client() as http:
        answer = await http.get(path)
    headers = answer.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "unsafe-eval" not in csp
    assert "script-src 'self' 'unsafe-inline'" not in csp  # inline scripts only by their hash
    assert "strict-transport-security" not in headers  # plain HTTP: HSTS would be ignored


@pytest.mark.parametrize("path", ["/problems", "/problems/not-found", "/asyncapi"])
async def test_pages_of_our_own_allow_their_style_sheet_and_nothing_else(stack: Stack, path: str) -> None:
    async with stack.client() as http:
        answer = await http.get(path)
    assert answer.status_code == 200, answer.text
    csp = answer.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; style-src 'sha256-"), csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
