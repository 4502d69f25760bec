import uuid
from datetime import UTC, datetime

import httpx
import orjson

from schemas.alerts import AlertEvent, NotificationChannel
from stream_processors.alerts.delivery import build_request, deliver_with_retries, sign, verify

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event() -> AlertEvent:
    ep = uuid.uuid4()
    return AlertEvent(
        event_id=uuid.uuid5(ep, "firing"),
        episode_id=ep,
        state="firing",
        rule_id=uuid.uuid4(),
        rule_name="cpu",
        server_id=uuid.uuid4(),
        metric="cpu",
        severity="critical",
        comparison="gt",
        threshold=90,
        value=95,
        started_at=T0,
        time=T0,
        message="cpu: firing",
    )


def channel(kind="webhook", secret="k" * 32) -> NotificationChannel:
    return NotificationChannel(
        id=uuid.uuid4(), owner_id=uuid.uuid4(), name="c", kind=kind, url="http://127.0.0.1:9/x", secret=secret
    )


def test_webhooks_are_signed_over_timestamp_and_body() -> None:
    e = event()
    body, headers = build_request(channel(), e)
    assert orjson.loads(body)["event_id"] == str(e.event_id)
    assert verify("k" * 32, headers["X-FleetPulse-Timestamp"], body, headers["X-FleetPulse-Signature"])
    assert not verify("other", headers["X-FleetPulse-Timestamp"], body, headers["X-FleetPulse-Signature"])
    assert sign("k", "1", b"x") != sign("k", "2", b"x")


def test_slack_gets_a_text_message() -> None:
    body, headers = build_request(channel("slack", None), event())
    assert "CRITICAL" in orjson.loads(body)["text"] and "X-FleetPulse-Signature" not in headers


async def run(statuses: list[int], max_attempts: int = 5) -> tuple[bool, list[tuple[bool, bool, int | None]]]:
    answers = iter(statuses)
    records: list[tuple[bool, bool, int | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    async def record(delivered: bool, final: bool, code: int | None, error: str | None) -> None:
        records.append((delivered, final, code))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        ok = await deliver_with_retries(
            client, channel(), event(), max_attempts=max_attempts, backoff=0, backoff_max=0, record=record
        )
    return ok, records


async def test_retries_until_success_within_the_attempt_limit() -> None:
    ok, records = await run([500, 503, 200])
    assert ok and records == [(False, False, 500), (False, False, 503), (True, True, 200)]


async def test_gives_up_after_max_attempts() -> None:
    ok, records = await run([500] * 3, max_attempts=3)
    assert not ok and records[-1] == (False, True, 500) and len(records) == 3


async def test_a_client_error_is_final_but_429_is_retried() -> None:
    ok, records = await run([404])
    assert not ok and records == [(False, True, 404)]
    ok, records = await run([429, 200])
    assert ok and len(records) == 2
