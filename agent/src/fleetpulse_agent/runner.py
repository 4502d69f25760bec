"""The reference agent: sample every interval, tail logs, spool, send, answer commands.

`run_agent` owns every resource (spool, tailer, connection) and closes them in reverse order. The
sampler keeps running while the server is away: its frames wait in the spool and are replayed
after the next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections.abc import Callable

from .collector import Collector, ContainerSource
from .commands import CommandPolicy, DockerActions
from .connection import AgentConnection, ConnectionConfig
from .errors import TIMEOUTS, WireError
from .journal import JournalReader
from .logtail import LogTailer
from .pacing import TokenBucket
from .settings import AgentSettings
from .spool import DiskSpool, Spool
from .wire import LogEntry, LogsFrame, MetricsFrame

log = logging.getLogger(__name__)


def connection_config(settings: AgentSettings) -> ConnectionConfig:
    ctx: ssl.SSLContext | None = None
    if settings.server_url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None)
    return ConnectionConfig(
        url=settings.server_url,
        api_key=settings.require_key(),
        connect_timeout=settings.connect_timeout_seconds,
        ack_timeout=settings.ack_timeout_seconds,
        heartbeat_interval=settings.heartbeat_interval_seconds,
        heartbeat_timeout=settings.heartbeat_timeout_seconds,
        backoff_initial=settings.backoff_initial_seconds,
        backoff_max=settings.backoff_max_seconds,
        replay_rate=settings.replay_rate_per_second,
        max_in_flight=settings.max_in_flight,
        max_frame_bytes=settings.max_frame_bytes,
        ssl_context=ctx,
    )


async def spool_frame(spool: Spool, conn: AgentConnection, frame: MetricsFrame | LogsFrame) -> int:
    """Spool one frame (it gets its seq here) and hand it to the connection to send live. A frame
    the server would refuse raises WireError before anything is spooled."""
    frame.with_seq(0).to_bytes()  # checked once, before a seq is taken
    built: dict[int, bytes] = {}

    def build(seq: int) -> bytes:
        built[seq] = frame.with_seq(seq).to_bytes()
        return built[seq]

    seq = await spool.append(build)
    conn.notify_live(seq, built[seq])
    return seq


spool_metrics = spool_logs = spool_frame


async def sample_every(
    interval: float, sample: Callable[[], MetricsFrame], spool: Spool, conn: AgentConnection
) -> None:
    """Sample on a fixed schedule (no drift: sample k is due at start + k * interval). A sample the
    server would refuse (a value out of its bounds) is logged and skipped, never spooled."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while True:
        frame = await asyncio.to_thread(sample)
        try:
            await spool_metrics(spool, conn, frame)
        except WireError as exc:
            log.error("sample skipped: %s", exc)
        k += 1
        due = start + k * interval
        now = loop.time()
        if due < now:  # fell behind (a suspended machine): skip the missed instants
            k = int((now - start) // interval) + 1
            due = start + k * interval
        await asyncio.sleep(due - now)


MAX_LOG_BATCH_BYTES = 128 * 1024  # ingest refuses frames over 256 KiB by default
MAX_LOG_BATCH_ENTRIES = 500


def log_batches(entries: list[LogEntry]) -> list[LogsFrame]:
    """Entries cut into `logs` frames that stay well under ingest's frame size limit."""
    frames: list[LogsFrame] = []
    batch: list[LogEntry] = []
    size = 0
    for entry in entries:
        n = len(entry.message.encode()) + 120  # the entry's own fields and JSON punctuation
        if batch and (size + n > MAX_LOG_BATCH_BYTES or len(batch) >= MAX_LOG_BATCH_ENTRIES):
            frames.append(LogsFrame(entries=batch))
            batch, size = [], 0
        batch.append(entry)
        size += n
    if batch:
        frames.append(LogsFrame(entries=batch))
    return frames


async def tail_logs(
    poll: Callable[[], list[LogEntry]], every: float, spool: Spool, conn: AgentConnection
) -> None:
    """Every `every` seconds, the new lines of `poll` (files or the journal), spooled in batches."""
    while True:
        entries = await asyncio.to_thread(poll)
        for frame in log_batches(entries):
            try:
                await spool_logs(spool, conn, frame)
            except WireError as exc:
                log.error("log lines skipped: %s", exc)
        await asyncio.sleep(every)


async def run_agent(settings: AgentSettings, stop: asyncio.Event) -> None:
    """Run until `stop` is set. Raises AuthRejected when the server refuses the key."""
    config = connection_config(settings)
    source = await asyncio.to_thread(ContainerSource.connect) if settings.collect_containers else None
    collector = Collector(top_processes=settings.top_processes, docker=source)
    spool = await DiskSpool.open(settings.spool_path, settings.spool_max_frames)
    waiting = await spool.size()
    if waiting:
        log.info("spool %s holds %d unacknowledged frame(s): replaying them", settings.spool_path, waiting)
    tailer = LogTailer(
        settings.log_files,
        TokenBucket(settings.log_rate_per_second, settings.log_burst),
        settings.log_max_line_bytes,
    )
    journal = JournalReader(
        settings.journal_units,
        TokenBucket(settings.log_rate_per_second, settings.log_burst),
        settings.log_max_line_bytes,
        command=settings.journalctl,
    )
    policy = CommandPolicy(
        enabled=settings.commands_enabled,
        allowlist=tuple(settings.command_allowlist),
        timeout_seconds=settings.command_timeout_seconds,
        max_output_bytes=settings.command_max_output_bytes,
    )
    conn = AgentConnection(
        config, spool, policy=policy, docker=DockerActions(settings.docker_actions_enabled), name="agent"
    )
    if not settings.commands_enabled:
        log.info("remote commands are disabled (commands_enabled = false)")
    elif hasattr(os, "geteuid") and os.geteuid() == 0:
        log.warning(
            "remote commands are enabled and this agent runs as root: they would run as root too; "
            "run the agent as an unprivileged user (docs/agent-install.md)"
        )
    tasks: list[asyncio.Task[None]] = []
    try:
        # A fleet restarted at once does not connect at once.
        jitter = random.uniform(0, settings.startup_jitter_seconds)
        sampler = sample_every(settings.interval_seconds, collector.sample, spool, conn)
        tasks.append(asyncio.create_task(sampler))
        if settings.log_files:
            tasks.append(asyncio.create_task(tail_logs(tailer.poll, settings.log_poll_seconds, spool, conn)))
        if settings.journal_units:
            await journal.start()
            tasks.append(asyncio.create_task(tail_logs(journal.poll, settings.log_poll_seconds, spool, conn)))
        with contextlib.suppress(*TIMEOUTS):
            await asyncio.wait_for(stop.wait(), jitter)
        runner = asyncio.create_task(conn.run_forever(stop))
        tasks.append(runner)
        # The connection ends the agent (stop, or a refused key); a failing sampler does too.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
    finally:
        started = time.monotonic()
        for task in reversed(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tailer.close()
        await journal.close()
        await spool.close()
        log.info("agent stopped in %.1f s", time.monotonic() - started)
