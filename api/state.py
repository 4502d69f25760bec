"""What the lifespan opens and every request reaches: one `Resources` per application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .db import Pool
from .settings import ApiSettings


@dataclass(slots=True)
class Resources:
    settings: ApiSettings
    pool: Pool
    # Filled by the lifespan as each part starts; typed loosely here so parts can be added
    # (the live hub, for one) without a cycle of imports.
    extras: dict[str, Any] = field(default_factory=dict)
