"""`python -m stream_processors.alerts`: a worker that runs only alerting (engine and notifier).

Use it to scale alerting apart from persistence; do not also enable alerting in the main worker
(`FLEETPULSE_PROCESSORS_ALERTS_ENABLED=false` there), or both evaluate every rule.
Settings: `FLEETPULSE_PROCESSORS_ALERTS_*` and `FLEETPULSE_*` (see docs/alerts.md).
"""

from __future__ import annotations

import sys

from schemas.settings import CommonSettings

from .runtime import tune_gc
from .service import create_alert_app
from .settings import AlertSettings


def main() -> None:
    common = CommonSettings()
    settings = AlertSettings()
    app = create_alert_app(common, settings, app_id=settings.worker_app_id, web_port=settings.worker_web_port)
    tune_gc(settings.gc_gen0_threshold)  # after the imports and the app: they are frozen
    # faust's own CLI parses sys.argv: run a worker unless a faust subcommand was given.
    if len(sys.argv) == 1:
        sys.argv.append("worker")
    app.main()


if __name__ == "__main__":
    main()
