"""The faust app every processor runs on: one set of conventions, and one correction to faust.

Conventions: raw bytes on every topic (decoded by `schemas/`' TypeAdapters, never pickle), acks
from every replica, faust's web server on loopback, state under `state_dir/faust/<app id>`.

The correction: faust (faust-streaming 0.15) empties every stream buffer each time flow control
is resumed, and its recovery resumes flow twice: once when it starts reading the changelogs, and
again after it has resumed the stream partitions and seeked them to their committed offsets.
Records fetched between those two calls reach an agent's buffer and are then emptied out of it,
while the consumer's position is already past them. The agent never sees them, their offsets are
never acknowledged, and committing stops at the first of them; with a single lost record, faust's
commit can even skip it for good (faust-streaming issues #596 and #606). This was the alert
worker "stall" after a restart or a rebalance.

`FlowControl` empties the buffers only when flow really resumes after a suspension, which is what
the clearing is for: dropping records fetched before a rebalance, for partitions that may now be
someone else's. faust also empties them explicitly when a rebalance starts.
"""

from __future__ import annotations

import faust
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


class App(faust.App):
    """A faust app with `FlowControl` (see the module's docstring)."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return FlowControl(loop=self.loop)


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
