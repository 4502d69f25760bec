"""Unit tests of the API's pure parts: rate limiter, resolution choice, command allowlist,
refusal of placeholder secrets in production, route templates for metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from api.commandline import allowed_by, parse
from api.errors import RangeTooLarge, TooManyRequests, Unprocessable
from api.observe import _template
from api.ratelimit import RateLimiter
from api.routes.history import choose_resolution
from api.settings import ApiSettings
from schemas.settings import CommonSettings, Environment


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_window_retry_after_and_reset() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 60.0, clock=clock)
    for _ in range(3):
        limiter.hit("a", "tries")
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit("a", "tries")
    assert refused.value.headers == {"Retry-After": "60"}
    limiter.hit("b", "tries")  # keys are independent
    clock.now += 30
    with pytest.raises(TooManyRequests) as later:
        limiter.hit("a", "tries")
    assert later.value.headers == {"Retry-After": "30"}
    clock.now += 30.001  # the first hits left the window
    limiter.hit("a", "tries")
    limiter.reset("a")
    for _ in range(3):
        limiter.hit("a", "tries")


def test_a_failure_limit_counts_only_failures_and_stays_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 60.0, clock=clock)
    for _ in range(5):
        limiter.check("a", "failures")  # checking counts nothing
    limiter.count("a")
    limiter.check("a", "failures")
    limiter.count("a")
    with pytest.raises(TooManyRequests):
        limiter.check("a", "failures")
    for _ in range(100):
        limiter.count("a")  # past the limit: still at most `limit` kept
    assert len(limiter._hits["a"]) == 2
    clock.now += 60.001
    limiter.check("a", "failures")


def test_common_passwords_are_refused_without_case() -> None:
    from pydantic import TypeAdapter

    from api.models import Password
    from api.passwords import common_passwords, is_common

    assert len(common_passwords()) > 10_000
    assert is_common("12345678") and is_common("PassWord") and not is_common("a sturdy passphrase 42")
    adapter = TypeAdapter(Password)
    assert adapter.validate_python("a sturdy passphrase 42") == "a sturdy passphrase 42"
    with pytest.raises(ValidationError, match="common"):
        adapter.validate_python("Password1")


def test_rate_limiter_prunes_idle_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 10.0, clock=clock)
    for n in range(100):
        limiter.hit(n, "tries")
    clock.now += 11
    limiter.hit("fresh", "tries")
    assert list(limiter._hits) == ["fresh"]


def _settings(tmp_path: Path, **overrides: object) -> ApiSettings:
    return ApiSettings(common=CommonSettings(env=Environment.TEST, state_dir=tmp_path), **overrides)  # type: ignore[arg-type]


def test_resolution_choice(tmp_path: Path) -> None:
    settings = _settings(tmp_path, history_max_points=1000)
    end = datetime(2026, 1, 1, tzinfo=UTC)

    def choose(span: timedelta, asked: str = "auto") -> str:
        return choose_resolution(settings, end - span, end, asked)  # type: ignore[arg-type]

    assert choose(timedelta(hours=6)) == "raw"
    assert choose(timedelta(hours=6, seconds=1)) == "1m"
    assert choose(timedelta(minutes=1000)) == "1m"
    assert choose(timedelta(minutes=1001)) == "1h"  # 1001 minutes > 1000 points
    assert choose(timedelta(days=41)) == "1h"
    for span, asked in ((timedelta(days=42), "auto"), (timedelta(days=1), "raw"), (timedelta(days=1), "1m")):
        with pytest.raises(RangeTooLarge):
            choose(span, asked)
    with pytest.raises(Unprocessable):
        choose(timedelta(0))


def test_allowlist_needs_a_full_match() -> None:
    assert allowed_by([], parse("anything at all"))
    patterns = ["uptime", r"systemctl status [a-z-]+", "(broken"]
    assert allowed_by(patterns, parse("uptime"))
    assert allowed_by(patterns, parse("systemctl status nginx"))
    assert allowed_by(patterns, parse("systemctl  'status'   nginx"))  # same argv, same decision
    assert not allowed_by(patterns, parse("systemctl status 'nginx x'"))
    assert not allowed_by(patterns, parse("uptime 'x; rm -rf /'"))
    assert not allowed_by(patterns, parse("'(broken'"))  # an invalid pattern allows nothing


def test_production_refuses_placeholder_secrets(tmp_path: Path) -> None:
    # The validator's SettingsError reaches the caller inside pydantic's ValidationError.
    with pytest.raises(ValidationError, match=r"FLEETPULSE_JWT_SECRET"):
        CommonSettings(
            env=Environment.PRODUCTION,
            state_dir=tmp_path,
            jwt_secret=SecretStr("changeme"),
            key_pepper=SecretStr("x" * 40),
        )
    with pytest.raises(ValidationError, match=r"FLEETPULSE_JWT_SECRET"):
        CommonSettings(env=Environment.PRODUCTION, state_dir=tmp_path, key_pepper=SecretStr("p" * 40))
    # Development generates one and keeps it across restarts.
    first = CommonSettings(env=Environment.DEVELOPMENT, state_dir=tmp_path)
    again = CommonSettings(env=Environment.DEVELOPMENT, state_dir=tmp_path)
    assert len(first.jwt_secret.get_secret_value()) >= 32
    assert first.jwt_secret.get_secret_value() == again.jwt_secret.get_secret_value()


def test_route_template_for_metrics() -> None:
    scope = {
        "path": "/api/v1/servers/0d6e/shares/77ab",
        "path_params": {"server_id": "0d6e", "user_id": "77ab"},
    }
    assert _template(scope) == "/api/v1/servers/{server_id}/shares/{user_id}"
    assert _template({"path": "/health", "path_params": {}}) == "/health"


async def test_command_broker_resolves_waiters_by_command_id() -> None:
    import asyncio
    import uuid as uuid_mod

    from api.commands import CommandBroker
    from api.errors import GatewayTimeout
    from schemas.canonical import CommandRequest, CommandResult

    class FakeProducer:
        """Answers each published command through the broker, as the results consumer would."""

        def __init__(self) -> None:
            self.broker: CommandBroker | None = None
            self.sent: list[CommandRequest] = []

        async def send_command(self, request: CommandRequest) -> None:
            self.sent.append(request)
            assert self.broker is not None
            if request.command == "silent":
                return
            other = CommandResult(
                command_id=uuid_mod.uuid4(),
                server_id=request.server_id,
                success=True,
                finished_at=request.requested_at,
            )
            mine = CommandResult(
                command_id=request.command_id,
                server_id=request.server_id,
                success=True,
                output="hi",
                finished_at=request.requested_at,
            )
            # Another replica's result, garbage, then ours: only ours resolves the waiter.
            self.broker._deliver(other.to_bytes())
            self.broker._deliver(b"{not json")
            self.broker._deliver(None)
            self.broker._deliver(mine.to_bytes())

    producer = FakeProducer()
    broker = CommandBroker("127.0.0.1:1", "unit.", producer)  # type: ignore[arg-type]
    producer.broker = broker
    started = asyncio.get_running_loop().create_future()
    broker._task = started  # type: ignore[assignment]  # as if start() had run
    now = datetime.now(UTC)

    def request(command: str) -> CommandRequest:
        return CommandRequest(
            command_id=uuid_mod.uuid4(),
            server_id=uuid_mod.uuid4(),
            action="shell",
            command=command,
            requested_at=now,
            deadline=now + timedelta(seconds=5),
        )

    result = await broker.request(request("echo hi"), wait_seconds=5)
    assert result.output == "hi"
    with pytest.raises(GatewayTimeout):
        await broker.request(request("silent"), wait_seconds=0.05)
    assert broker._waiting == {}  # nothing left behind, answered or not
    started.cancel()


def test_the_api_server_declines_permessage_deflate_unless_enabled(tmp_path: Path) -> None:
    from api.__main__ import server_config

    assert server_config(_settings(tmp_path)).ws_per_message_deflate is False
    assert server_config(_settings(tmp_path, ws_per_message_deflate=True)).ws_per_message_deflate is True
