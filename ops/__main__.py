"""`fleetpulse-ops migrate|topics|init|wheelhouse`: prepare the database, the broker and the agent's
wheels (`wheelhouse --help`)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from schemas.settings import CommonSettings

from . import migrate, topics


def main(argv: list[str] | None = None) -> None:
    import sys

    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["wheelhouse"]:
        from . import wheelhouse

        wheelhouse.main(given[1:])
        return
    parser = argparse.ArgumentParser(prog="fleetpulse-ops", description=__doc__)
    commands = ["migrate", "topics", "init", "wheelhouse"]
    parser.add_argument("command", choices=commands, help="init = migrate + topics")
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
