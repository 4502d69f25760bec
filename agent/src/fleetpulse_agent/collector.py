"""What the agent measures, with psutil: one `MetricsFrame` per interval.

psutil calls block (they read /proc), so `Collector.sample` is meant to run on a worker thread.
CPU percentages are measured between consecutive samples (psutil's non-blocking form), for the
machine and for each process; the first sample after start therefore reads 0 for processes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from .wire import NAME, Container, Disk, Interface, MetricsFrame, Process, utc_now

log = logging.getLogger(__name__)

# Filesystems that are not storage an operator cares about: memory, overlays, images, kernel views.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "tmpfs",
        "devtmpfs",
        "overlay",
        "squashfs",
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "mqueue",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "autofs",
        "fusectl",
        "configfs",
        "hugetlbfs",
        "binfmt_misc",
        "nsfs",
        "ramfs",
        "rpc_pipefs",
        "efivarfs",
        "iso9660",
        "fuse.snapfuse",
        "fuse.lxcfs",
        "fuse.gvfsd-fuse",
        "nfsd",
    }
)


def real_filesystems(partitions: list[Any]) -> list[Any]:
    """Mounted filesystems that hold data: no pseudo or image filesystems, one mount per device
    (a device bind-mounted twice is counted once, at its shortest mount point)."""
    by_device: dict[str, Any] = {}
    for part in partitions:
        fstype = (part.fstype or "").lower()
        if (
            not fstype
            or fstype in PSEUDO_FILESYSTEMS
            or part.mountpoint.startswith(("/snap/", "/proc", "/sys"))
        ):
            continue
        key = part.device or part.mountpoint
        current = by_device.get(key)
        if current is None or len(part.mountpoint) < len(current.mountpoint):
            by_device[key] = part
    return sorted(by_device.values(), key=lambda p: p.mountpoint)


@dataclass
class Collector:
    top_processes: int = 10  # the top N by CPU and the top N by memory
    docker: Any | None = None  # a ContainerSource, when a daemon is reachable
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        psutil.cpu_percent(interval=None)  # start the CPU measurement window

    def sample(self) -> MetricsFrame:
        now = utc_now()
        mem = psutil.virtual_memory()
        load: tuple[float, float, float] | None
        try:
            load = os.getloadavg()
        except OSError:  # not on this platform
            load = None
        return MetricsFrame(
            timestamp=now,
            cpu_percent=min(100.0, max(0.0, psutil.cpu_percent(interval=None))),
            memory_percent=mem.percent,
            memory_total=mem.total,
            memory_used=mem.total - mem.available,
            load_average=load,
            uptime_seconds=max(0, int(time.time() - psutil.boot_time())),
            cpu_cores=psutil.cpu_count() or None,
            disk_usage=self._disks(),
            network=self._interfaces(),
            containers=self.docker.containers() if self.docker is not None else None,
            top_processes=self._top_processes(),
        )

    def _disks(self) -> list[Disk]:
        disks = []
        for part in real_filesystems(psutil.disk_partitions(all=False)):
            if len(part.mountpoint) > NAME:
                continue  # the server stores mount points of at most 256 characters
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:  # unmounted meanwhile, or no permission
                continue
            disks.append(
                Disk(
                    path=part.mountpoint,
                    total=usage.total,
                    used=usage.used,
                    free=usage.free,
                    percent=min(100.0, usage.percent),
                )
            )
        return disks

    def _interfaces(self) -> list[Interface]:
        counters = psutil.net_io_counters(pernic=True)
        return [
            Interface(
                interface=name,
                bytes_sent=c.bytes_sent,
                bytes_recv=c.bytes_recv,
                packets_sent=c.packets_sent,
                packets_recv=c.packets_recv,
                errors_in=c.errin,
                errors_out=c.errout,
            )
            for name, c in sorted(counters.items())
        ]

    def _top_processes(self) -> list[Process]:
        """The top N processes by CPU and the top N by memory, in that order (a process in both
        lists is sent once): a leak shows even while the CPU hogs are others."""
        if self.top_processes <= 0:
            return []
        # Keep Process objects between samples: cpu_percent() measures since the previous call.
        seen: dict[int, psutil.Process] = {}
        rows: list[Process] = []
        for proc in psutil.process_iter():
            proc = self._procs.get(proc.pid, proc)
            try:
                with proc.oneshot():
                    info = Process(
                        pid=proc.pid,
                        name=proc.name()[:NAME],
                        cpu_percent=round(proc.cpu_percent(interval=None), 2),
                        memory_percent=round(proc.memory_percent(), 2),
                        memory_rss_bytes=proc.memory_info().rss,
                        user=_cut(_username(proc)),
                        status=proc.status(),
                    )
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            seen[proc.pid] = proc
            rows.append(info)
        self._procs = seen
        return top_by_cpu_and_memory(rows, self.top_processes)


def top_by_cpu_and_memory(rows: list[Process], n: int) -> list[Process]:
    by_cpu = sorted(rows, key=lambda p: (p.cpu_percent or 0.0, p.memory_percent or 0.0), reverse=True)[:n]
    by_memory = sorted(rows, key=lambda p: (p.memory_percent or 0.0, p.cpu_percent or 0.0), reverse=True)[:n]
    chosen = {p.pid for p in by_cpu}
    return by_cpu + [p for p in by_memory if p.pid not in chosen]


def _cut(value: Any) -> str | None:
    return None if value is None else str(value)[:NAME]


def _username(proc: psutil.Process) -> str | None:
    try:
        return proc.username()
    except (psutil.AccessDenied, KeyError):
        return None


class ContainerSource:
    """Containers and their state from the Docker Engine API, when a daemon answers."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, timeout: float = 3.0) -> ContainerSource | None:
        """A source if a Docker daemon is reachable now; None (logged once) otherwise."""
        try:
            from .commands import check_unix_socket

            check_unix_socket()
            import docker

            client = docker.from_env(timeout=timeout)
            try:
                client.ping()
            except BaseException:
                client.close()  # its connection pool holds a socket
                raise
        except ImportError:
            log.info("the docker package is not installed: containers are not collected")
            return None
        except Exception as exc:  # noqa: BLE001 - the SDK raises many types; any means "no daemon"
            log.info("no Docker daemon reachable (%s): containers are not collected", exc)
            return None
        return cls(client)

    def containers(self) -> list[Container] | None:
        try:
            items = self._client.containers.list(all=True)
        except Exception as exc:  # noqa: BLE001 - the daemon went away: report "no Docker" this time
            log.warning("listing containers failed: %s", exc)
            return None
        out = []
        for c in items:
            attrs = c.attrs or {}
            state = attrs.get("State")
            out.append(
                Container(
                    id=c.short_id if hasattr(c, "short_id") else str(c.id)[:12],
                    name=str(c.name)[:NAME],
                    image=_cut((attrs.get("Config") or {}).get("Image")),
                    state=c.status,
                    status=_cut(state.get("Status")) if isinstance(state, dict) else None,
                )
            )
        return out
