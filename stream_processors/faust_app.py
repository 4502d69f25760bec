"""The faust app every processor runs on: one set of conventions.

Conventions: raw bytes on every topic (decoded by `schemas/`' TypeAdapters, never pickle), acks
from every replica, faust's web server on loopback, state under `state_dir/faust/<app id>`.

faust only hosts services and web pages here: persistence (`persist.py`) and the alert engine and
notifier (`alerts/`) are aiokafka consumer groups with manual commits, run as services of the app.
No agent, no table, no faust stream: faust-streaming 0.15's recovery after a rebalance dropped
records it had fetched (the alert worker "stall", faust-streaming issue #596), and its
`Stream.take` acks a batch whose write failed. The two corrections this module once carried for
faust's recovery (flow control resumed twice, an empty partition set read as "every partition")
went with the last agent; an agent added later would need them back (see docs/architecture.md).
"""

from __future__ import annotations

import faust

from schemas.settings import CommonSettings


def create_faust_app(
    common: CommonSettings,
    *,
    app_id: str,
    web_port: int,
    session_timeout_seconds: float,
    heartbeat_interval_seconds: float,
) -> faust.App:
    """A faust app named `<topic prefix><app_id>` (its consumer group, changelogs and state)."""
    datadir = common.state_dir / "faust" / app_id
    # faust creates only the last level of its data directory: a fresh state folder needs the rest.
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        f"{common.topic_prefix}{app_id}",
        broker=f"kafka://{common.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_port=web_port,
        web_host="127.0.0.1",
        datadir=str(datadir),
        topic_partitions=common.topic_partitions,
        topic_replication_factor=1,
        producer_acks=-1,
        # A killed worker's place in the group is given up after this long (faust's default,
        # 60 s, would hold its partitions, and a restarted worker's start, for a minute).
        broker_session_timeout=session_timeout_seconds,
        broker_heartbeat_interval=heartbeat_interval_seconds,
    )
