"""Settings of the API service (env prefix `FLEETPULSE_API_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import CommonSettings


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_API_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8000
