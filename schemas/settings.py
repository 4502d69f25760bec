"""Settings shared by every deployable (env prefix `FLEETPULSE_`).

Each deployable has its own settings class with its own prefix (`FLEETPULSE_INGEST_`,
`FLEETPULSE_API_`, `FLEETPULSE_PROCESSORS_`) that holds a `CommonSettings`. Settings are read once,
at the entry point, and passed down: importing a module never reads the environment.

Secrets have no usable default in production: with `FLEETPULSE_ENV=production` a missing or
placeholder secret stops the process at start, naming the variable. In development and tests a
random secret is generated once and kept in the state folder, so restarts keep tokens valid.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
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
