"""Wait until a service answers like a client needs it to (not just a TCP connect)."""

from __future__ import annotations

import argparse
import asyncio
import time

import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from .errors import NotReady


async def kafka(bootstrap: str, within: float = 60.0) -> float:
    """Wait until the broker answers a metadata request; returns the seconds waited."""
    start = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - start < within:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        try:
            await admin.start()
            await admin.list_topics()
            return time.monotonic() - start
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise NotReady(f"Kafka at {bootstrap} did not answer metadata within {within:.0f} s: {last}")


def postgres(dsn: str, timeout: float = 60.0) -> float:
    start = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return time.monotonic() - start
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.5)
    raise NotReady(f"PostgreSQL at {dsn} did not answer within {timeout:.0f} s: {last}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.wait")
    parser.add_argument("service", choices=["kafka", "postgres"])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--dsn", default="postgresql://fleetpulse@127.0.0.1:15432/fleetpulse")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.service == "kafka":
        asyncio.run(kafka(args.bootstrap, args.timeout))
    else:
        postgres(args.dsn, args.timeout)


if __name__ == "__main__":
    main()
