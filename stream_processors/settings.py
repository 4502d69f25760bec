"""Settings of the stream processors (env prefix `FLEETPULSE_PROCESSORS_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import CommonSettings


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETPULSE_PROCESSORS_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    app_id: str = "fleetpulse-processors"
    web_port: int = 6066  # faust's own web server: health at /health
