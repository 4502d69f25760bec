"""The collector: real psutil readings of this machine, and the filesystem filter."""

from __future__ import annotations

import time
from types import SimpleNamespace

from agent.collector import Collector, real_filesystems
from schemas.agent_wire import AGENT_FRAME, SeedMetricsFrame


def part(device: str, mountpoint: str, fstype: str) -> SimpleNamespace:
    return SimpleNamespace(device=device, mountpoint=mountpoint, fstype=fstype)


def test_pseudo_filesystems_and_duplicates_are_left_out() -> None:
    parts = [
        part("/dev/sda1", "/", "ext4"),
        part("tmpfs", "/run", "tmpfs"),
        part("overlay", "/var/lib/docker/overlay2/x/merged", "overlay"),
        part("/dev/loop3", "/snap/core/1", "squashfs"),
        part("/dev/sdb1", "/data", "xfs"),
        part("/dev/sdb1", "/data/bind/again", "xfs"),  # a bind mount of the same device
        part("proc", "/proc", "proc"),
    ]
    assert [p.mountpoint for p in real_filesystems(parts)] == ["/", "/data"]


def test_a_sample_of_this_machine_is_a_valid_seed_metrics_frame() -> None:
    collector = Collector(top_processes=5)
    time.sleep(0.2)
    frame = collector.sample()
    again = AGENT_FRAME.validate_json(frame.model_copy(update={"seq": 7}).to_bytes())
    assert isinstance(again, SeedMetricsFrame) and again.seq == 7
    assert 0 <= frame.cpu_percent <= 100 and 0 < frame.memory_percent <= 100
    assert frame.memory_total and frame.cpu_cores and frame.uptime_seconds is not None
    assert any(d.path == "/" for d in frame.disk_usage)
    assert all(d.path not in ("/proc", "/sys", "/dev/shm") for d in frame.disk_usage)
    assert any(n.interface == "lo" for n in frame.network)
    assert frame.load_average is not None
    assert 0 < len(frame.top_processes) <= 5
    assert frame.containers is None  # no Docker source given


def test_top_processes_are_ordered_by_cpu() -> None:
    collector = Collector(top_processes=50)
    time.sleep(0.2)
    frame = collector.sample()
    cpus = [p.cpu_percent or 0.0 for p in frame.top_processes]
    assert cpus == sorted(cpus, reverse=True)
