"""The faust app every processor runs on: one set of conventions, and two corrections to faust.

Conventions: raw bytes on every topic (decoded by `schemas/`' TypeAdapters, never pickle), acks
from every replica, faust's web server on loopback, state under `state_dir/faust/<app id>`.

Both corrections are races in faust-streaming 0.15's recovery after a rebalance. Each made a
worker drop records it had fetched while the consumer's position was already past them: the
agent never saw them, their offsets were never acknowledged and committing stopped at the first
of them (the alert worker "stall" after a restart or a rebalance; faust-streaming issue #596).

1. Buffers emptied twice. faust empties every stream buffer whenever flow control resumes, and
   recovery resumes it twice: when it starts reading the changelogs, and again after seeking the
   stream partitions to their committed offsets. Records fetched during that seek were emptied
   out. `FlowControl` empties the buffers only when flow resumes after a real suspension, which
   is what the clearing is for (records fetched before a rebalance; faust also empties the
   buffers when a rebalance starts).
2. An empty set means "every partition". faust hands its live set of active partitions to
   aiokafka's `fetched_records` and filters the result with the same set. When recovery pauses
   the changelog partitions during a fetch the set becomes empty, which aiokafka reads as "no
   filter": it returns the stream partitions' records, faust discards them as inactive, and
   the seek that follows recovery does not rewind a partition with no committed offset (a
   worker killed before its first commit). `Consumer` passes a copy of the set instead, so
   records of partitions faust did not ask for stay in aiokafka's buffer.
"""

from __future__ import annotations

from collections.abc import Set

import faust
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.transports import TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from schemas.settings import CommonSettings


class FlowControl(FlowControlEvent):
    """faust's flow control, except that resuming flow that is not suspended keeps the buffers."""

    def resume(self) -> None:
        suspended = not self.is_active()
        self._suspend.clear()
        self._resume.set()
        if suspended:
            self.clear()


class Consumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, fetching for a fixed copy of the active partitions."""

    # The signature is faust's (hence the `timeout` argument).
    async def _getmany(self, active_partitions: Set[TP] | None, timeout: float) -> RecordMap:  # noqa: ASYNC109
        snapshot = None if active_partitions is None else set(active_partitions)
        return await super()._getmany(snapshot, timeout)


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer


class App(faust.App):
    """A faust app with `FlowControl` and `Consumer` (see the module's docstring)."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return FlowControl(loop=self.loop)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)


def create_faust_app(
    common: CommonSettings,
    *,
    app_id: str,
    web_port: int,
    session_timeout_seconds: float,
    heartbeat_interval_seconds: float,
) -> App:
    """A faust app named `<topic prefix><app_id>` (its consumer group, changelogs and state)."""
    datadir = common.state_dir / "faust" / app_id
    # faust creates only the last level of its data directory: a fresh state folder needs the rest.
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return App(
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
