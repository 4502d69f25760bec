"""`fleetpulse-agent`: run the reference agent, or a simulated fleet.

    fleetpulse-agent run [--config agent.toml]
    fleetpulse-agent check [--config agent.toml]    the configuration, one sample, and the key
    fleetpulse-agent simulate --agents N --keys-file keys.txt [--server-url URL]

Exit codes: 0 stopped by a signal; 2 the configuration is unusable; 3 the server refused the API
key (retrying cannot help: the systemd unit does not restart on it); 4 a newer agent with the
same key took over (close 4000); 5 (`check` only) the server could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .errors import AuthRejected, ConfigError, ConnectionLost, Superseded
from .settings import AGENT_PATH, agent_socket_url, load

EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_SUPERSEDED = 4
EXIT_UNREACHABLE = 5  # `check` only: the server did not answer
log = logging.getLogger("agent")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _run(config: Path | None, overrides: dict[str, object]) -> None:
    from .runner import run_agent

    settings = load(config, overrides=overrides)
    settings.require_key()
    stop = asyncio.Event()
    _stop_on_signals(stop)
    log.info(
        "agent starting: server %s, every %g s, spool %s, commands %s",
        settings.server_url,
        settings.interval_seconds,
        settings.spool_path,
        "enabled" if settings.commands_enabled else "disabled",
    )
    await run_agent(settings, stop)


async def _check(config: Path | None, overrides: dict[str, object]) -> None:
    """The configuration loads, one sample encodes, and the server accepts the key (then closes)."""
    from .collector import Collector
    from .connection import AgentConnection
    from .runner import connection_config
    from .spool import MemorySpool

    settings = load(config, overrides=overrides)
    settings.require_key()
    frame = await asyncio.to_thread(Collector(top_processes=settings.top_processes).sample)
    size = len(frame.to_bytes())
    print(f"configuration ok; a sample of this machine is {size} bytes")
    conn = AgentConnection(connection_config(settings), MemorySpool(10), name="check")
    server_id = await conn.check_key()
    print(f"the server at {settings.server_url} accepted the key: this is server {server_id}")


async def _simulate(args: argparse.Namespace) -> None:
    from .simulator import Fleet, FleetConfig

    keys = [k.strip() for k in args.keys_file.read_text().splitlines() if k.strip()]
    if len(keys) < args.agents:
        raise ConfigError(
            f"{args.keys_file} holds {len(keys)} key(s) for {args.agents} agent(s): one key each"
        )
    fleet = Fleet(
        FleetConfig(
            url=agent_socket_url(args.server_url),
            keys=keys[: args.agents],
            interval=args.interval,
            churn_mean_seconds=args.churn_seconds,
            startup_spread_seconds=args.startup_spread,
            seed=args.seed,
        )
    )
    stop = asyncio.Event()
    _stop_on_signals(stop)

    async def report() -> None:
        while True:
            await asyncio.sleep(args.report_seconds)
            log.info("fleet: %s", fleet.summary())

    reporter = asyncio.create_task(report())
    started = time.monotonic()
    try:
        await fleet.run(stop)
    finally:
        reporter.cancel()
        log.info("fleet stopped after %.0f s: %s", time.monotonic() - started, fleet.summary())
    if fleet.rejected and len(fleet.rejected) == len(keys[: args.agents]):
        raise AuthRejected(f"every simulated agent's key was refused: {fleet.rejected[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetpulse-agent", description="The FleetPulse agent.")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"fleetpulse-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="report this machine")
    run.add_argument("--config", type=Path, help="a TOML configuration file (see docs/agent-install.md)")
    run.add_argument("--server-url", help="overrides server_url")
    run.add_argument("--api-key", help="overrides api_key (prefer the file or the environment)")
    run.add_argument("--state-dir", type=Path, help="overrides state_dir (where the spool lives)")
    run.add_argument("--interval", type=float, help="overrides interval_seconds")
    check = sub.add_parser("check", help="check the configuration, one sample and the key, then exit")
    check.add_argument("--config", type=Path)
    sim = sub.add_parser("simulate", help="a simulated fleet: many agents in this process")
    sim.add_argument("--agents", type=int, required=True)
    sim.add_argument("--keys-file", type=Path, required=True, help="one API key per line, one per agent")
    sim.add_argument("--server-url", default="ws://127.0.0.1:8001" + AGENT_PATH)
    sim.add_argument("--interval", type=float, default=5.0)
    sim.add_argument("--churn-seconds", type=float, default=600.0, help="mean stay between leaves; 0: never")
    sim.add_argument("--startup-spread", type=float, default=5.0)
    sim.add_argument("--report-seconds", type=float, default=30.0)
    sim.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "run":
            overrides = {
                "server_url": args.server_url,
                "api_key": args.api_key,
                "state_dir": args.state_dir,
                "interval_seconds": args.interval,
            }
            asyncio.run(_run(args.config, overrides))
        elif args.command == "check":
            asyncio.run(_check(args.config, {}))
        else:
            asyncio.run(_simulate(args))
    except ConfigError as exc:
        print(f"fleetpulse-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AuthRejected as exc:
        print(f"fleetpulse-agent: {exc}; not retrying (fix the key, then restart)", file=sys.stderr)
        return EXIT_AUTH
    except Superseded as exc:
        print(f"fleetpulse-agent: {exc}; stopping (one agent per server key)", file=sys.stderr)
        return EXIT_SUPERSEDED
    except (ConnectionLost, OSError) as exc:
        print(f"fleetpulse-agent: cannot reach the server: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
