"""The collector: real psutil readings of this machine, and the filesystem filter."""

from __future__ import annotations

import time
from types import SimpleNamespace

from fleetpulse_agent.collector import Collector, real_filesystems, top_by_cpu_and_memory
from fleetpulse_agent.wire import Process
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
    again = AGENT_FRAME.validate_json(frame.with_seq(7).to_bytes())  # the server's own model
    assert isinstance(again, SeedMetricsFrame) and again.seq == 7
    assert 0 <= frame.cpu_percent <= 100 and 0 < frame.memory_percent <= 100
    assert frame.memory_total and frame.cpu_cores and frame.uptime_seconds is not None
    assert any(d.path == "/" for d in frame.disk_usage)
    assert all(d.path not in ("/proc", "/sys", "/dev/shm") for d in frame.disk_usage)
    assert any(n.interface == "lo" for n in frame.network)
    assert frame.load_average is not None
    assert 0 < len(frame.top_processes) <= 10  # the top 5 by CPU and the top 5 by memory
    assert len({p.pid for p in frame.top_processes}) == len(frame.top_processes)
    # Every process carries its RSS (a kernel thread's is 0); the largest by memory hold some.
    assert all(isinstance(p.memory_rss_bytes, int) and p.memory_rss_bytes >= 0 for p in frame.top_processes)
    assert max(p.memory_rss_bytes or 0 for p in frame.top_processes) > 0
    assert again.top_processes[0].memory_rss_bytes == frame.top_processes[0].memory_rss_bytes
    assert frame.containers is None  # no Docker source given


def test_top_processes_are_the_top_n_by_cpu_then_the_top_n_by_memory() -> None:
    def proc(pid: int, cpu: float, mem: float) -> Process:
        return Process(pid=pid, name=f"p{pid}", cpu_percent=cpu, memory_percent=mem)

    rows = [
        proc(1, 90, 1),
        proc(2, 50, 2),
        proc(3, 0.5, 60),
        proc(4, 0, 30),
        proc(5, 10, 25),
        proc(6, 0, 0.1),
    ]
    chosen = top_by_cpu_and_memory(rows, 2)
    # The two CPU hogs, then the two largest by memory: the leak (pid 3) shows although idle.
    assert [p.pid for p in chosen] == [1, 2, 3, 4]
    # A process in both lists is sent once.
    assert [p.pid for p in top_by_cpu_and_memory([proc(1, 90, 60), proc(2, 1, 1), proc(3, 0, 2)], 1)] == [1]
    assert top_by_cpu_and_memory(rows, 0) == []


def test_a_real_sample_holds_the_top_n_by_cpu_then_by_memory() -> None:
    collector = Collector(top_processes=3)
    time.sleep(0.2)
    frame = collector.sample()
    cpus = [p.cpu_percent or 0.0 for p in frame.top_processes[:3]]
    assert cpus == sorted(cpus, reverse=True)
    mems = [p.memory_percent or 0.0 for p in frame.top_processes[3:]]
    assert mems == sorted(mems, reverse=True)
    assert 3 <= len(frame.top_processes) <= 6
