"""`fleetpulse-ops migrate|topics|init`: prepare the database and the broker."""

from __future__ import annotations

import argparse
import asyncio
import logging

from schemas.settings import CommonSettings

from . import migrate, topics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fleetpulse-ops", description=__doc__)
    parser.add_argument("command", choices=["migrate", "topics", "init"], help="init = migrate + topics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = CommonSettings()
    if args.command in ("migrate", "init"):
        applied = migrate.apply(settings.database_url)
        print(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ""))
    if args.command in ("topics", "init"):
        created = asyncio.run(
            topics.ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, settings.topic_partitions)
        )
        print(f"topics: {len(created)} created")


if __name__ == "__main__":
    main()
