"""`fleetpulse-processors`: run a stream processors worker (several may share the partitions)."""

from __future__ import annotations

import sys

from .app import create_app
from .settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    app = create_app(settings)
    # faust's own CLI parses sys.argv: run a worker unless a faust subcommand was given.
    if len(sys.argv) == 1:
        sys.argv.append("worker")
    app.main()


if __name__ == "__main__":
    main()
