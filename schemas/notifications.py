"""What an alert notification looks like on the wire: the payload builder both senders share.

The alert notifier (stream_processors) and the API's channel test (`POST
/notification-channels/{id}/test`) send through their own thin HTTP senders, but every body,
header and signature comes from here, so a test message is exactly what a real alert sends.

A webhook receives the AlertEvent JSON with `X-FleetPulse-Event-Id` (deduplicate on it: delivery
is at-least-once), `X-FleetPulse-Timestamp` (unix seconds) and, when the channel has a secret,
`X-FleetPulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`. A Slack
channel receives a Slack-compatible incoming-webhook body, `{"text": ...}`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

import orjson

from .alerts import AlertEvent, NotificationChannel, alert_event_id

# A 4xx other than these means the request itself is wrong: retrying will not help.
RETRIABLE_4XX = frozenset({408, 409, 425, 429})
USER_AGENT = "FleetPulse-Alerts/1"


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
    """The body and headers of one notification of `event` to `channel`."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if channel.kind == "slack":
        return orjson.dumps({"text": slack_text(event)}), headers
    body = event.to_bytes()
    timestamp = str(int(time.time()))
    headers["X-FleetPulse-Event-Id"] = str(event.event_id)
    headers["X-FleetPulse-Timestamp"] = timestamp
    if channel.secret:
        headers["X-FleetPulse-Signature"] = sign(channel.secret, timestamp, body)
    return body, headers


_TEST_NAMESPACE = uuid.UUID("0b9e7c52-3d1f-4e8a-9c6b-2f5d4a7e1c30")


def test_event(channel: NotificationChannel, now: datetime | None = None) -> AlertEvent:
    """A firing event that says it is a test, for `channel`: a fresh episode each time (so a
    receiver that deduplicates on the event id still shows every test), rule and server ids of
    the channel's own assignment where it has one (zeros otherwise)."""
    at = now or datetime.now(UTC)
    episode = uuid.uuid5(_TEST_NAMESPACE, f"{channel.id}|{at.isoformat()}|{uuid.uuid4()}")
    return AlertEvent(
        event_id=alert_event_id(episode, "firing"),
        episode_id=episode,
        state="firing",
        rule_id=channel.rule_id or uuid.UUID(int=0),
        rule_name="FleetPulse test notification",
        owner_id=channel.owner_id,
        server_id=channel.server_id or uuid.UUID(int=0),
        metric="test",
        severity="info",
        comparison="gt",
        threshold=0.0,
        value=None,
        started_at=at,
        time=at,
        message=f"Test notification for channel {channel.name!r}: this channel works.",
    )
