"""The API's one HTTP sender: a channel's test message (`POST /notification-channels/{id}/test`).

The body, headers and signature come from `schemas.notifications`, the builder the alert
notifier sends real alerts with, so a test that succeeds means alerts will arrive the same way.
One attempt, no retries: the caller sees the answer at once and can try again.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from schemas.alerts import NotificationChannel
from schemas.notifications import build_request, test_event


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False  # not a pytest class

    delivered: bool
    status_code: int | None
    error: str | None


async def send_test(channel: NotificationChannel, *, timeout_seconds: float) -> TestResult:
    """Send one test notification to `channel` now; never raises for the receiver's failures."""
    body, headers = build_request(channel, test_event(channel))
    try:
        # A client per test: tests are rare, and redirects are not followed (a channel's URL is
        # where the notifier posts, with no redirect either).
        async with httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False) as client:
            response = await client.post(channel.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return TestResult(False, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    code = response.status_code
    if 200 <= code < 300:
        return TestResult(True, code, None)
    return TestResult(False, code, f"HTTP {code}")
