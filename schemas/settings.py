"""Settings shared by every deployable (env prefix `FLEETPULSE_`).

Each deployable has its own settings class with its own prefix (`FLEETPULSE_INGEST_`,
`FLEETPULSE_API_`, `FLEETPULSE_PROCESSORS_`) that holds a `CommonSettings`. Settings are read once,
at the entry point, and passed down: importing a module never reads the environment.

Secrets have no usable default in production: with `FLEETPULSE_ENV=production` a missing or
placeholder secret stops the process at start, naming the variable. In development and tests a
random secret is generated once and kept in the state folder, so restarts keep tokens valid.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "test"})
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A setting is missing or unusable; the message names the environment variable."""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    state_dir: Path = Path(".state")
    kafka_bootstrap: str = "127.0.0.1:19092"
    database_url: str = "postgresql://fleetpulse@127.0.0.1:15432/fleetpulse"
    topic_prefix: str = ""  # isolates deployments (or test runs) that share one broker
    topic_partitions: int = Field(default=12, ge=1, le=1024)
    # HMAC key for API-key hashes. Shared by ingest (verifies) and api (creates).
    key_pepper: SecretStr = SecretStr("")
    # Signing key for access and refresh tokens (api) and for verifying them (frontend sockets).
    jwt_secret: SecretStr = SecretStr("")
    # The reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: addresses or
    # networks, comma-separated ("10.0.0.5, 10.1.0.0/16"). Empty (the default): none, every
    # server sees the TCP peer's address, whatever headers a client sends.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for item in _split(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise SettingsError(
                    f"FLEETPULSE_TRUSTED_PROXIES: {item!r} is not an address or network"
                ) from exc
        return value

    @property
    def proxies(self) -> list[str]:
        return _split(self.trusted_proxies)

    @model_validator(mode="after")
    def _secrets(self) -> CommonSettings:
        for field, env_name in (
            ("key_pepper", "FLEETPULSE_KEY_PEPPER"),
            ("jwt_secret", "FLEETPULSE_JWT_SECRET"),
        ):
            value: SecretStr = getattr(self, field)
            raw = value.get_secret_value()
            if raw.lower() not in PLACEHOLDER_SECRETS and len(raw) >= MIN_SECRET_LENGTH:
                continue
            if self.env is Environment.PRODUCTION:
                raise SettingsError(
                    f"{env_name} must be set to a random secret of at least {MIN_SECRET_LENGTH} characters "
                    "in production (it has no default)"
                )
            setattr(self, field, SecretStr(_development_secret(self.state_dir, field)))
        return self


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class EdgeSettings(BaseModel):
    """How one server (the API, ingest) meets the network; each deployable's settings class
    inherits these fields under its own prefix (`FLEETPULSE_API_TLS_CERTFILE`, ...)."""

    # TLS served by the process itself (https:// and wss://): a PEM certificate chain and its
    # key. Both or neither; a proxy that terminates TLS stays possible.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # Connections (HTTP and WebSocket) held at once by the process, and from one client address
    # (trusted proxies are exempt from the per-address cap); past either a new connection is
    # closed before anything is read. A connection must send a complete request head within
    # `request_head_timeout` seconds of opening, and of each answer's end.
    max_connections: int = Field(default=10_000, ge=1)
    # Generous per address: a fleet behind one NAT (or a simulator on one machine) is one address.
    max_connections_per_address: int = Field(default=2_500, ge=1)
    request_head_timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> EdgeSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise SettingsError("TLS needs both a certificate (TLS_CERTFILE) and its key (TLS_KEYFILE)")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None


def _development_secret(state_dir: Path, name: str) -> str:
    """A random secret generated once per state folder (development and tests only)."""
    path = state_dir / "secrets" / name
    try:
        value = path.read_text().strip()
        if len(value) >= MIN_SECRET_LENGTH:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    # Two processes starting together may both generate one: the first rename wins and both
    # re-read it, so they agree.
    if not path.exists():
        tmp.replace(path)
    else:
        tmp.unlink()
    return path.read_text().strip()
