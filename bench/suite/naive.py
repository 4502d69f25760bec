"""The naive fanout design, for the fanout scenario's comparison: one Kafka consumer per browser
socket (each reads every partition of the metrics topic from its end and keeps its server's
samples), in one API-like process. The same clients and publisher as `bench/live_fanout.py`.

    python -m bench.suite.naive --sockets 1000 --servers 1000 --burst 3

Prints one JSON object: deliveries per second for `--burst` samples per server, memory per socket,
the server's CPU per thousand deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
import psutil

from bench.live_fanout import (
    Clients,
    free_port,
    kb_per_socket,
    publish,
    raise_fd_limit,
    settled_rss_mb,
    wait_port,
)

PARTITIONS = 12  # as bench/live_fanout.py makes them
KAFKA = os.environ.get("FLEETPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def serve_naive(port: int, topic: str, partitions: int) -> None:
    raise_fd_limit()
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(port, topic, partitions))


async def _serve(port: int, topic: str, partitions: int) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    from schemas import topics
    from schemas.canonical import METRIC_SAMPLE

    async def handler(ws: ServerConnection) -> None:
        server = uuid.UUID(ws.request.path.rstrip("/").rpartition("/")[2]) if ws.request else uuid.uuid4()
        key = topics.server_key(server)
        await ws.recv()  # the auth frame; the naive design checks nothing else either
        consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            await ws.send('{"type":"history_end"}')
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for r in records:
                        if r.key == key and r.value is not None:
                            s = METRIC_SAMPLE.validate_json(r.value)
                            data = {"timestamp": s.time.isoformat(), "cpu_percent": s.cpu_percent}
                            await ws.send(orjson.dumps({"type": "metrics", "data": data}).decode())
        except ConnectionClosed:  # a closed socket ends its consumer
            return
        finally:
            await consumer.stop()

    async with serve(handler, "127.0.0.1", port, ping_interval=None, backlog=8192):
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=3, help="samples per server")
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args()
    raise_fd_limit()

    from ops.topics import ensure_topics
    from schemas import topics
    from tests.support.topics import delete_topics

    prefix = f"bench-naive-{uuid.uuid4().hex[:8]}."
    topic = topics.METRICS.name(prefix)
    asyncio.run(ensure_topics(KAFKA, prefix, PARTITIONS))
    servers = [uuid.uuid4() for _ in range(args.servers)]
    port = free_port()
    code = f"from bench.suite.naive import serve_naive; serve_naive({port}, {topic!r}, {PARTITIONS})"
    proc = subprocess.Popen([sys.executable, "-c", code])
    result: dict[str, Any] = {"sockets": args.sockets, "servers": args.servers, "burst": args.burst}
    try:
        wait_port(port)
        idle = settled_rss_mb(proc.pid)
        urls = [
            f"ws://127.0.0.1:{port}/api/v1/ws/metrics/{servers[i % args.servers]}"
            for i in range(args.sockets)
        ]
        t0 = time.time()
        clients = Clients(urls, "naive", args.client_procs)
        connected = clients.ready()
        result["connect_seconds"] = round(time.time() - t0, 1)
        result["kb_per_socket"] = kb_per_socket(settled_rss_mb(proc.pid) - idle, connected)
        cpu = psutil.Process(proc.pid)
        before = sum(cpu.cpu_times()[:2])
        start = time.time()
        asyncio.run(publish(prefix, servers, args.burst, None))
        done = max(clients.ask("count", args.burst))
        deliveries = args.sockets * args.burst
        result["deliveries_per_s"] = round(deliveries / (done - start), 1)
        result["cpu_s_per_1000_deliveries"] = round(
            (sum(cpu.cpu_times()[:2]) - before) / deliveries * 1000, 4
        )
        clients.stop()
    finally:
        proc.terminate()
        proc.wait(30)
        asyncio.run(delete_topics(KAFKA, prefix))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
