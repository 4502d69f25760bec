"""What the lifespan opens and every request reaches: one `Resources` per application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .db.pool import Pool
from .ratelimit import RateLimiter
from .settings import ApiSettings

if TYPE_CHECKING:
    from .commands import CommandBroker
    from .kafka import Producer
    from .metrics import ApiMetrics


@dataclass(slots=True)
class Resources:
    settings: ApiSettings
    pool: Pool
    producer: Producer
    commands: CommandBroker
    metrics: ApiMetrics
    login_limiter: RateLimiter  # per (email, address), every attempt
    command_limiter: RateLimiter
    account_failures: RateLimiter  # failed logins per email
    address_failures: RateLimiter  # failed logins per client address
    password_limiter: RateLimiter  # password changes per user
    key_check_failures: RateLimiter  # failed key pre-flights per client address
    # Parts added by other packages (the live hub, for one), by name.
    extras: dict[str, Any] = field(default_factory=dict)
