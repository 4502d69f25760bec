"""Timers of the processors app: retention with drop_chunks, and the stale-server sweep.

The Apache edition of TimescaleDB has no retention policies (no background jobs), so the app
drops old chunks itself. Every worker runs the timers; drop_chunks and the sweep are idempotent,
so several workers doing it at once do no harm.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import mode

from . import db
from .db import Database
from .errors import ProcessorError
from .settings import ProcessorSettings

log = logging.getLogger(__name__)


def retention_plan(settings: ProcessorSettings) -> list[tuple[str, timedelta]]:
    """Each hypertable with the age past which its chunks are dropped."""
    plan = [(table, settings.retention_raw) for table in db.RAW_TABLES]
    plan.append((db.ROLLUP_1M_TABLE, settings.retention_1m))
    plan.append((db.ROLLUP_1H_TABLE, settings.retention_1h))
    return plan


class RetentionService(mode.Service):
    """Drops expired chunks every `retention_interval_seconds`, and marks silent servers stale."""

    def __init__(self, settings: ProcessorSettings, database: Database, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._database = database
        self.runs = 0  # completed retention passes (for health and tests)

    async def apply_retention(self) -> dict[str, list[str]]:
        """One retention pass; returns the dropped chunks per table."""
        dropped: dict[str, list[str]] = {}
        for table, older_than in retention_plan(self._settings):
            async with self._database.transaction() as conn:
                dropped[table] = await db.drop_old_chunks(conn, table, older_than)
            if dropped[table]:
                log.info(
                    "retention: dropped %d chunk(s) of %s older than %s",
                    len(dropped[table]),
                    table,
                    older_than,
                )
        self.runs += 1
        return dropped

    async def sweep_stale(self) -> int:
        async with self._database.transaction() as conn:
            return await db.mark_stale(conn, timedelta(seconds=self._settings.stale_after_seconds))

    @mode.Service.task
    async def _retention_timer(self) -> None:
        while not self.should_stop:
            try:
                await self.apply_retention()
            except ProcessorError as exc:
                # An outage only delays retention until the next pass.
                log.warning("retention pass failed: %s", exc)
            await self.sleep(self._settings.retention_interval_seconds)

    @mode.Service.task
    async def _stale_timer(self) -> None:
        while not self.should_stop:
            await self.sleep(self._settings.stale_check_interval_seconds)
            try:
                marked = await self.sweep_stale()
            except ProcessorError as exc:
                log.warning("stale sweep failed: %s", exc)
                continue
            if marked:
                log.info("marked %d server(s) stale", marked)
            await asyncio.sleep(0)
