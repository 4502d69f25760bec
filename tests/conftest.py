"""Shared fixtures. Two tiers: `tests/unit` (fakes, no services) and `tests/integration` (the real
Kafka and TimescaleDB started by `infra/services.sh start`).

Locally an integration test skips, with the reason, when a service is absent; under CI
(`CI=true`) a missing service fails the run instead. Each test session works in a database and a
topic namespace of its own, so tests never see `make run`'s data, nor it theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from ops import migrate
from ops.topics import ensure_topics
from schemas.settings import CommonSettings, Environment
from tests.support.alerts import AlertEnv, new_env
from tests.support.topics import SESSION_PREFIX, delete_topics

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Heavy suites run reduced in CI; FLEETPULSE_FULL=1 runs them in full.
FULL = os.environ.get("FLEETPULSE_FULL", "") == "1"

# The same ports infra/services.sh uses (and the same variables to move them).
KAFKA_BOOTSTRAP = os.environ.get(
    "FLEETPULSE_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('FLEETPULSE_KAFKA_PORT', '19092')}"
)
ADMIN_DSN = os.environ.get(
    "FLEETPULSE_TEST_ADMIN_DSN",
    f"postgresql://fleetpulse@127.0.0.1:{os.environ.get('FLEETPULSE_PG_PORT', '15432')}/postgres",
)
TEST_PARTITIONS = 4


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Decided on the path below tests/ (the checkout's own path may hold any folder name).
    service_tiers = {"integration", "security", "browser"}
    for item in items:
        path = Path(item.path).resolve()
        parts = path.relative_to(ROOT / "tests").parts if path.is_relative_to(ROOT / "tests") else ()
        if parts and parts[0] in service_tiers:
            item.add_marker(pytest.mark.integration)


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it with `infra/services.sh start`"
    if IN_CI:
        pytest.fail(f"under CI a missing service is a failure: {message}", pytrace=False)
    pytest.skip(message)


def _dsn_for(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    return ADMIN_DSN


@contextlib.contextmanager
def _migrated_database(admin_dsn: str, label: str) -> Iterator[str]:
    name = f"fp_test_{label}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _dsn_for(name)
    try:
        migrate.apply(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(postgres_admin_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    with _migrated_database(postgres_admin_dsn, "") as dsn:
        yield dsn


@pytest.fixture
def private_database(postgres_admin_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for one test: for tests whose assertions (or whose effects,
    such as dropping chunks) span whole tables, which other tests' rows would disturb."""
    with _migrated_database(postgres_admin_dsn, "own_") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    from ops import wait

    try:
        asyncio.run(wait.kafka(KAFKA_BOOTSTRAP, within=5))
    except Exception as exc:
        _unavailable("Kafka", exc)
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """The topic namespace of this test session, with every topic created in it; the topics are
    deleted at the end, those of the tests' own namespaces included."""
    asyncio.run(ensure_topics(kafka_bootstrap, SESSION_PREFIX, TEST_PARTITIONS))
    yield SESSION_PREFIX
    # Every test's own namespace (tests/support/topics.py) is inside this one.
    asyncio.run(delete_topics(kafka_bootstrap, SESSION_PREFIX))


@pytest.fixture
def common_settings(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> CommonSettings:
    return CommonSettings(
        env=Environment.TEST,
        state_dir=tmp_path / "state",
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=topic_prefix,
        topic_partitions=TEST_PARTITIONS,
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """An autocommit connection to the session's database."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def alert_env(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[AlertEnv]:
    """A topic namespace for alert workers started by the test; they are killed at its end."""
    environment = await new_env(database_url, kafka_bootstrap, tmp_path)
    yield environment
    for worker in environment.workers:
        worker.kill()
