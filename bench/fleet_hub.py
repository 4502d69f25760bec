"""What the fleet sockets cost the API process per message, next to the raw limit: decoding the
same messages alone, measured in the same run (no Kafka, no sockets: the hub's tap and flush).

    .venv/bin/python -m bench.fleet_hub [--servers 1000] [--sockets 10] [--messages 20000] [--runs 5]

--sockets fleet subscribers all follow the same --servers servers; --messages samples (two disks
each) of those servers go through `FleetHub.on_metrics` in batches of 500, as the reader hands
them over, and every socket's `fleet_update` is built after each batch (what the senders do once
per flush period). Medians of --runs:
  decode only   METRIC_SAMPLE.validate_json of every message: the floor;
  tap           on_metrics (decode, apply, mark dirty for every watcher);
  tap + flush   the same plus every socket's fleet_update text after each batch.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from api.live.channels import Channels
from api.live.fleet import FleetHub, FleetQueue, FleetSubscriber
from api.live.hub import TP, Record
from schemas.canonical import METRIC_SAMPLE, DiskSample, MetricSample
from schemas.topics import server_key

BATCH = 500


def make_records(servers: list[uuid.UUID], messages: int) -> list[Record]:
    now = datetime.now(UTC)
    disks = tuple(
        DiskSample(mount=m, total_bytes=10**12, used_bytes=10**11, free_bytes=9 * 10**11, percent=10.0)
        for m in ("/", "/data")
    )
    out = []
    for i in range(messages):
        server = servers[i % len(servers)]
        t = now + timedelta(milliseconds=i)
        sample = MetricSample(
            server_id=server, time=t, received_at=t, cpu_percent=i % 100, memory_percent=40.0, disks=disks
        )
        out.append(Record(i, server_key(server), sample.to_bytes()))
    return out


def run_once(records: list[Record], servers: list[uuid.UUID], sockets: int, flush: bool) -> float:
    channels = Channels.for_prefix("bench.")
    fleet = FleetHub(channels, stale_after=timedelta(seconds=60))
    subs = [FleetSubscriber(FleetQueue(1000, lambda: None)) for _ in range(sockets)]
    for sub in subs:
        fleet.add(sub, servers)
    tp = TP(channels.metrics.topic, 0)
    started = time.perf_counter()
    for i in range(0, len(records), BATCH):
        fleet.on_metrics(tp, records[i : i + BATCH])
        if flush:
            for sub in subs:
                fleet.flush_text(sub)
    return time.perf_counter() - started


def decode_only(records: list[Record]) -> float:
    started = time.perf_counter()
    for r in records:
        METRIC_SAMPLE.validate_json(r.value or b"")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    servers = [uuid.uuid4() for _ in range(args.servers)]
    records = make_records(servers, args.messages)
    results: dict[str, list[float]] = {"decode only": [], "tap": [], "tap + flush": []}
    for _ in range(args.runs):
        results["decode only"].append(decode_only(records))
        results["tap"].append(run_once(records, servers, args.sockets, flush=False))
        results["tap + flush"].append(run_once(records, servers, args.sockets, flush=True))
    floor = statistics.median(results["decode only"])
    print(
        f"{args.messages} samples of {args.servers} servers, {args.sockets} sockets; medians of {args.runs}"
    )
    for label, times in results.items():
        med = statistics.median(times)
        print(
            f"{label:12s} {med * 1000:8.1f} ms  {args.messages / med:9.0f} messages/s  "
            f"{med / args.messages * 1e6:6.1f} us/message  ratio to decode {med / floor:5.2f}"
        )


if __name__ == "__main__":
    main()
