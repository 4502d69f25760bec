import { describe, expect, it } from "vitest";
import { isVirtual, rangeSeconds, SeriesSet } from "../src/lib/metrics";

describe("SeriesSet", () => {
  it("merges REST history and live frames into one ordered series", () => {
    const s = new SeriesSet();
    s.insertSeries(s.cpu, {
      server_id: "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
      metric: "cpu_percent",
      start: "2026-12-03T10:00:00Z",
      end: "2026-12-03T10:01:00Z",
      resolution: "raw",
      points: [
        { time: "2026-12-03T10:00:00Z", value: 10 },
        { time: "2026-12-03T10:00:10Z", value: 11 },
      ],
    });
    s.insertFrame({ timestamp: "2026-12-03T10:00:10Z", cpu_percent: 11, memory_percent: 40 }); // overlap
    s.insertFrame({
      timestamp: "2026-12-03T10:00:20Z",
      cpu_percent: 12,
      memory_percent: 41,
      disks: [{ mount: "/", percent: 70 }],
      interfaces: [
        { interface: "eth0", bytes_recv_per_second: 100, bytes_sent_per_second: 50 },
        { interface: "eth1" },
      ],
    });
    expect(s.cpu.ys[0]).toEqual([10, 11, 12]);
    expect(s.disk("/").ys[0]).toEqual([70]);
    expect(s.iface("eth0").ys).toEqual([[100], [50]]);
    expect(s.interfaces.has("eth1")).toBe(false); // no rate known yet: nothing drawn
  });

  it("gives rollup points their bucket width, so an hour apart is not a gap", () => {
    const s = new SeriesSet();
    s.insertSeries(s.cpu, {
      server_id: "3f0c2d4e-8f1a-4c9e-9a57-0d9c1b2a7e65",
      metric: "cpu_percent",
      start: "2026-12-03T08:00:00Z",
      end: "2026-12-03T10:00:00Z",
      resolution: "1h",
      points: [
        { time: "2026-12-03T08:00:00Z", value: 1 },
        { time: "2026-12-03T09:00:00Z", value: 2 },
      ],
    });
    expect(s.cpu.widths).toEqual([3600, 3600]);
    expect(s.cpu.toPlot()[1]).toEqual([1, 2]);
  });
});

describe("interfaces and ranges", () => {
  it("hides loopback and virtual interfaces", () => {
    for (const name of ["lo", "docker0", "veth1a2b", "br-1234", "virbr0", "tailscale0", "wg0"])
      expect(isVirtual(name)).toBe(true);
    for (const name of ["eth0", "ens3", "enp0s31f6", "wlan0", "bond0"]) expect(isVirtual(name)).toBe(false);
  });
  it("reads the range from the URL", () => {
    expect(rangeSeconds("7d")).toBe(604800);
    expect(rangeSeconds(null)).toBe(3600);
    expect(rangeSeconds("nonsense")).toBe(3600);
  });
});
