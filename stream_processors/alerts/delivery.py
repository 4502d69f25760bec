"""Sending one alert event to one channel: the payloads, the signature, the retry policy.

Free of faust so it is tested on its own. A webhook receives the AlertEvent JSON with
`X-FleetPulse-Event-Id` (deduplicate on it: delivery is at-least-once in the rare crash between
a receiver's 2xx and the log's update), `X-FleetPulse-Timestamp` (unix seconds) and
`X-FleetPulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
import orjson

from schemas.alerts import AlertEvent, NotificationChannel

from .errors import DeliveryFailed

log = logging.getLogger(__name__)

# A 4xx other than these means the request itself is wrong: retrying will not help.
_RETRIABLE_4XX = frozenset({408, 409, 425, 429})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and what the tests do): constant-time comparison."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def slack_text(event: AlertEvent) -> str:
    icon = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}[event.state]
    return f"{icon} [{event.severity.upper()}] {event.message} (server {event.server_id})"


def build_request(channel: NotificationChannel, event: AlertEvent) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json", "User-Agent": "FleetPulse-Alerts/1"}
    if channel.kind == "slack":
        return orjson.dumps({"text": slack_text(event)}), headers
    body = event.to_bytes()
    timestamp = str(int(time.time()))
    headers["X-FleetPulse-Event-Id"] = str(event.event_id)
    headers["X-FleetPulse-Timestamp"] = timestamp
    if channel.secret:
        headers["X-FleetPulse-Signature"] = sign(channel.secret, timestamp, body)
    return body, headers


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
    if 400 <= code < 500 and code not in _RETRIABLE_4XX:
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
