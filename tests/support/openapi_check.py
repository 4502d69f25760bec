"""Checks of an answer against the OpenAPI document: its status is one its operation lists, and
an error answer is problem details of that status."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx

from schemas.problems import PROBLEM_MEDIA_TYPE, Problem


def unlisted(operation: dict[str, Any], response: httpx.Response) -> str | None:
    """Why the answer does not match its operation's listed responses; None when it does."""
    status = str(response.status_code)
    listed = operation.get("responses", {})
    if status not in listed:
        return f"{status} is not listed (listed: {sorted(listed)}): {response.text[:200]}"
    if response.status_code < 400:
        return None
    if response.headers.get("content-type") != PROBLEM_MEDIA_TYPE:
        return f"{status} as {response.headers.get('content-type')}: {response.text[:200]}"
    try:
        body = Problem.model_validate_json(response.content)
    except ValueError as exc:
        return f"{status}: not a problem body ({exc}): {response.text[:200]}"
    if body.status != response.status_code:
        return f"{status} whose body says status {body.status}"
    examples = listed[status].get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("examples", {})
    kinds = {example["value"]["type"] for example in examples.values()}
    if body.type not in kinds:
        return f"{status} of type {body.type}, not one listed for it ({sorted(kinds)})"
    return None


def operation_for(doc: dict[str, Any], method: str, url: str) -> dict[str, Any] | None:
    """The operation a request reaches, matched as the router matches (on the decoded path, a
    path parameter one segment); None when no path of the document matches (routing's 404)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    for template, operations in doc["paths"].items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template)
        )
        if re.fullmatch(pattern, path) and method.lower() in operations:
            found: dict[str, Any] = operations[method.lower()]
            return found
    return None
