"""`python -m ops.chaos [--short] [--out DIR]`: run the chaos scenario and write its report.

The full run (the default) cuts one agent off for ten minutes and lasts some
fifteen; `--short` (CI's reduced suite) cuts it off for twenty seconds. Exit status 1 when any
sample was lost or duplicated where it must not be, 2 when the run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from schemas.settings import CommonSettings

from . import report
from .errors import ChaosError
from .run import FAULTS, ChaosConfig, execute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the reduced run (CI): a 20 s cut, fewer agents")
    parser.add_argument("--out", type=Path, help="report folder (default: <state>/chaos-report)")
    parser.add_argument("--faults", nargs="+", choices=FAULTS, help="these faults only, in this order")
    parser.add_argument("--seed-agents", type=int)
    parser.add_argument("--legacy-agents", type=int)
    parser.add_argument("--cut-seconds", type=float)
    parser.add_argument(
        "--keep", action="store_true", help="keep the private services' state for a post-mortem"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = ChaosConfig.short() if args.short else ChaosConfig.full()
    overrides: dict[str, object] = {}
    if args.faults:
        overrides["faults"] = tuple(args.faults)
    for name in ("seed_agents", "legacy_agents", "cut_seconds"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if overrides:
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    shared = CommonSettings().state_dir.resolve()
    state = shared / "chaos" / f"run-{os.getpid()}-{int(time.time())}"
    out = args.out or shared / "chaos-report"
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        run = asyncio.run(execute(config, state, shared / "kafka" / "lib", logs, keep=args.keep))
    except ChaosError as exc:
        print(f"[chaos] could not run: {exc} (logs: {logs})", file=sys.stderr)
        return 2
    result = report.build(run)
    result.environment = report.environment(run)
    json_path, md_path = report.write(result, out)
    print()
    print(report.markdown(result))
    print(f"[chaos] report: {md_path} and {json_path}; logs: {logs}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
