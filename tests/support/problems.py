"""Checks that an HTTP answer is problem details (RFC 9457) of the expected kind."""

from __future__ import annotations

from typing import Any

import httpx

from schemas.problems import KINDS, PROBLEM_MEDIA_TYPE, Problem


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """The answer's problem body, after checking its media type, shape, status and kind."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, response.headers
    body: dict[str, Any] = response.json()
    Problem.model_validate(body)  # every member the RFC names, with the types it gives them
    assert body["status"] == status and isinstance(body["detail"], str) and body["detail"], body
    assert body["instance"] == response.request.url.raw_path.decode().split("?")[0], body
    if kind is not None:
        assert body["type"] == f"/problems/{kind}" and body["title"] == KINDS[kind].title, body
        assert KINDS[kind].status == status
    return body
