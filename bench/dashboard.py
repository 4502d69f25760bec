"""The dashboard's performance, measured in the browser (Debian's Chromium): a server page's
first chart with one hour of history, and the fleet page with 1,000 servers, first render and
live updates (long tasks from the browser's PerformanceObserver). Not asserted anywhere.

    .venv/bin/python -m bench.dashboard [--servers 1000] [--runs 7] [--update-seconds 20]

Set-up: a fresh database; the API (with ingest, `ops.server`) serving the built dashboard
(`make web`) on a free port; one user with --servers servers, each with 15 minutes of samples
10 s apart written by the persistence path (so the sparkline's 1-minute rollups are real), and
one more server with one hour of samples (360, two disks). Then bench/dashboard.mjs, --runs
times each, medians reported:

  server page  navigation start -> the frame after the 1 h history of every chart is drawn
               (`server:history-chart`), a full page load each time (assets cached after the
               first); raw limit in the same run: the page's own history requests, fetched
               bare from a loaded page;
  fleet page   navigation start -> the frame after the rows are in the DOM (`fleet:rendered`);
               raw limit: GET /api/v1/fleet alone, from a loaded page;
  live         every server changes every second for --update-seconds (the fleet socket's
               most), fed to the page's own socket code by the benchmark, then scrolling:
               long tasks over 50 ms counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import psycopg

from bench.fleet_summary import make_samples, populate
from ops import migrate
from ops.topics import ensure_topics
from stream_processors import db
from tests.support.topics import delete_topics

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def hour_server(dsn: str, owner: uuid.UUID) -> uuid.UUID:
    server = uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO servers (id, owner_id, name, tags, status) VALUES (%s, %s, %s, %s, 'online')",
            (server, owner, "aaa-one-hour", ["bench"]),
        )
        await db.prepare_connection(conn)
        async with conn.transaction():
            await db.write_batch(
                conn,
                make_samples([server], 360, datetime.now(UTC)),
                {},
                rollup_horizon=datetime.now(UTC),
                stale_after=timedelta(minutes=5),
            )
    return server


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--update-seconds", type=int, default=20)
    parser.add_argument("--admin-dsn", default="postgresql://fleetpulse@127.0.0.1:15432/postgres")
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    args = parser.parse_args()
    if not (ROOT / "web" / "dist" / "index.html").exists():
        raise SystemExit("build the dashboard first: make web")

    name = f"fp_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = args.admin_dsn.rpartition("/")[0] + f"/{name}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    api: subprocess.Popen[bytes] | None = None
    try:
        migrate.apply(dsn)
        asyncio.run(ensure_topics(args.kafka, prefix, 4))
        with TemporaryDirectory() as state:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
            env.update(
                FLEETPULSE_ENV="test",
                FLEETPULSE_JWT_SECRET=secrets.token_urlsafe(48),
                FLEETPULSE_KEY_PEPPER=secrets.token_urlsafe(48),
                FLEETPULSE_DATABASE_URL=dsn,
                FLEETPULSE_KAFKA_BOOTSTRAP=args.kafka,
                FLEETPULSE_TOPIC_PREFIX=prefix,
                FLEETPULSE_TOPIC_PARTITIONS="4",
                FLEETPULSE_STATE_DIR=state,
                FLEETPULSE_API_PORT=str(port),
                FLEETPULSE_API_LOGIN_ATTEMPTS="1000",
            )
            log = Path(state) / "api.log"
            with log.open("ab") as out:
                api = subprocess.Popen(
                    [sys.executable, "-m", "ops.server"],
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or api.poll() is not None:
                    raise SystemExit(f"the API did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            token = httpx.post(
                f"{base}/api/v1/auth/register",
                json={
                    "email": email,
                    "username": email.split("@")[0],
                    "password": PASSWORD,
                    "password_confirm": PASSWORD,
                },
            ).json()
            owner = uuid.UUID(token["user"]["id"])
            started = time.perf_counter()
            asyncio.run(populate(dsn, owner, args.servers - 1, 90))
            server = asyncio.run(hour_server(dsn, owner))
            print(f"set-up: {args.servers} servers in {time.perf_counter() - started:.1f} s")
            run = subprocess.run(
                ["node", str(ROOT / "bench" / "dashboard.mjs")],
                env={
                    **os.environ,
                    "REPO_ROOT": str(ROOT),
                    "BASE_URL": base,
                    "EMAIL": email,
                    "PASSWORD": PASSWORD,
                    "SERVER_ID": str(server),
                    "RUNS": str(args.runs),
                    "UPDATE_SECONDS": str(args.update_seconds),
                    "PROFILE": os.environ.get("PROFILE", ""),
                },
                capture_output=True,
                text=True,
                timeout=900,
            )
            if os.environ.get("PROFILE"):
                print(run.stderr)
            if run.returncode != 0:
                raise SystemExit(f"the browser part failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
            result = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        if api is not None and api.poll() is None:
            api.send_signal(signal.SIGTERM)
            api.wait(30)
        asyncio.run(delete_topics(args.kafka, prefix))
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    s, f, live = result["server"], result["fleet"], result["live"]
    print(f"{result['runs']} runs each, medians (first run in brackets: cold asset cache)")
    print(
        f"server page, 1 h history drawn  {median(s['ms']):7.0f} ms  [{s['ms'][0]:.0f}]   "
        f"raw history requests {median(s['raw_ms']):6.0f} ms   "
        f"ratio {median(s['ms']) / median(s['raw_ms']):5.1f}"
        f"   ({s['cpu_points']} CPU points)"
    )
    print(
        f"fleet page, {args.servers} servers rendered {median(f['ms']):7.0f} ms  [{f['ms'][0]:.0f}]   "
        f"raw GET /fleet {median(f['raw_ms']):6.0f} ms   ratio {median(f['ms']) / median(f['raw_ms']):5.1f}"
        f"   ({f['rows_in_dom']} rows in the DOM; {f['summary']})"
    )
    print(
        f"live: {live['frames_sent']} frames of {live['updates_per_frame']} updates, {live['seconds']} s; "
        f"rows changed: {live['changed']}. Long tasks over 50 ms (longest):"
    )
    for name, p in live["phases"].items():
        print(f"  {name:26s} {p['over_50ms']:3d}  ({p['max_ms']} ms)")


if __name__ == "__main__":
    main()
