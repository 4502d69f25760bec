"""Sending one alert event to one channel: the HTTP attempt and the retry policy.

Free of faust so it is tested on its own. The payloads and the signature are built by
`schemas.notifications` (shared with the API's channel test, so a test message is exactly what
an alert sends); a webhook receiver deduplicates on `X-FleetPulse-Event-Id`: delivery is
at-least-once in the rare crash between a receiver's 2xx and the log's update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx

from schemas.alerts import AlertEvent, NotificationChannel
from schemas.notifications import RETRIABLE_4XX, build_request, sign, slack_text, verify

from .errors import DeliveryFailed

__all__ = ["build_request", "deliver_with_retries", "send_once", "sign", "slack_text", "verify"]

log = logging.getLogger(__name__)


async def send_once(client: httpx.AsyncClient, channel: NotificationChannel, event: AlertEvent) -> int:
    """One attempt; returns the status code, raises DeliveryFailed (retriable or not)."""
    body, headers = build_request(channel, event)
    try:
        response = await client.post(channel.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    code = response.status_code
    if 200 <= code < 300:
        return code
    error = DeliveryFailed(f"HTTP {code}", status_code=code)
    if 400 <= code < 500 and code not in RETRIABLE_4XX:
        error.retriable = False
    raise error


Attempt = Callable[[bool, bool, int | None, str | None], Awaitable[None]]
"""Records an attempt: (delivered, final, status_code, error)."""


async def deliver_with_retries(
    client: httpx.AsyncClient,
    channel: NotificationChannel,
    event: AlertEvent,
    *,
    max_attempts: int,
    backoff: float,
    backoff_max: float,
    record: Attempt,
) -> bool:
    """Try up to `max_attempts` times, waiting backoff * 2**n (capped) between attempts."""
    for attempt in range(1, max_attempts + 1):
        try:
            code = await send_once(client, channel, event)
        except DeliveryFailed as exc:
            final = attempt == max_attempts or not exc.retriable
            await record(False, final, exc.status_code, str(exc))
            if final:
                log.warning("alert %s to channel %s failed for good: %s", event.event_id, channel.id, exc)
                return False
            await asyncio.sleep(min(backoff * 2 ** (attempt - 1), backoff_max))
        else:
            await record(True, True, code, None)
            return True
    return False
