"""The long-lived resources of the alert processors: a database pool, the rules feed, the owner
cache and an HTTP client. Started and stopped by a faust service, in reverse order."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alerting.registry import RuleRegistry
from schemas.settings import CommonSettings

from . import store
from .rules import RulesFeed
from .settings import AlertSettings

log = logging.getLogger(__name__)

_RETRY_INITIAL = 0.1
_RETRY_MAX = 5.0


class AlertResources:
    def __init__(
        self,
        common: CommonSettings,
        settings: AlertSettings,
        registry: RuleRegistry,
        rules_topic: str | None,
    ) -> None:
        self.common = common
        self.settings = settings
        self.registry = registry
        self._rules_topic = rules_topic  # None: rules deployed as code, nothing to read
        self._feed: RulesFeed | None = None
        self._pool: AsyncConnectionPool[store.Conn] | None = None
        self._http: httpx.AsyncClient | None = None
        self._owners: dict[uuid.UUID, tuple[uuid.UUID | None, float]] = {}
        self._ready = asyncio.Event()

    @property
    def pool(self) -> AsyncConnectionPool[store.Conn]:
        assert self._pool is not None, "alert resources are not started"
        return self._pool

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "alert resources are not started"
        return self._http

    async def start(self) -> None:
        self._pool = AsyncConnectionPool(
            self.common.database_url,
            min_size=1,
            max_size=self.settings.db_pool_max_size,
            open=False,
            kwargs={"autocommit": True},
        )
        await self._pool.open(wait=False)
        self._http = httpx.AsyncClient(timeout=self.settings.notify_timeout_seconds)
        if self._rules_topic is not None:
            self._feed = RulesFeed(
                self.common.kafka_bootstrap,
                self._rules_topic,
                self.registry,
                self.settings.rules_ready_timeout_seconds,
            )
            await self._feed.start()
        self._ready.set()

    async def stop(self) -> None:
        # Reverse order of start: the feed, then the HTTP client, then the pool.
        if self._feed is not None:
            await self._feed.stop()
            self._feed = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def retrying(self, what: str, op: store.Op[store.T]) -> store.T:
        """Run a database operation until it succeeds: an outage delays alerts, never drops them."""
        delay = _RETRY_INITIAL
        while True:
            try:
                async with self.pool.connection() as conn:
                    return await op(conn)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                # Connection lost or none to be had: transient by nature. Anything else (a bug,
                # a constraint) propagates.
                log.warning("alerts: %s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def prefetch_owners(self, server_ids: set[uuid.UUID]) -> None:
        """Make `cached_owner` answer for every one of these servers: one query for those whose
        cached owner is missing or expired (an outage retries: it delays alerts, never drops
        them)."""
        now = time.monotonic()
        missing = sorted(s for s in server_ids if (c := self._owners.get(s)) is None or c[1] <= now)
        if not missing:
            return
        found = await self.retrying("owner lookup", lambda conn: store.owners_of(conn, missing))
        until = now + self.settings.owners_ttl_seconds
        for server_id in missing:
            self._owners[server_id] = (found.get(server_id), until)

    def cached_owner(self, server_id: uuid.UUID) -> uuid.UUID | None:
        """The owner last looked up (None: unknown server, or not looked up yet)."""
        cached = self._owners.get(server_id)
        return None if cached is None else cached[0]

    async def owner(self, server_id: uuid.UUID) -> uuid.UUID | None:
        """The server's owner (None: unknown server), cached for `owners_ttl_seconds`."""
        cached = self._owners.get(server_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        owner = await self.retrying("owner lookup", lambda conn: store.owner_of(conn, server_id))
        self._owners[server_id] = (owner, now + self.settings.owners_ttl_seconds)
        return owner
