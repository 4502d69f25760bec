/**
 * One server's metric series, fed by REST history and by the metrics socket's frames alike
 * (both insert by timestamp, so overlaps merge and late backlogs land in place).
 */
import type { Latest, Process, RateSeries, Series } from "./api";
import { TimeSeries } from "./series";

/** Loopback and virtual interfaces, hidden from the charts unless asked for. */
export const VIRTUAL_INTERFACE =
  /^(lo\d*|docker\d*|veth|br-|virbr|vnet|cni|flannel|cali|tun|tap|kube|lxc|lxd|tailscale|wg|zt|dummy|ifb|sit|ip6tnl)/;

export function isVirtual(name: string): boolean {
  return VIRTUAL_INTERFACE.test(name);
}

export const BUCKET_SECONDS: Record<string, number> = { raw: 0, "1m": 60, "5m": 300, "1h": 3600 };

export interface FrameDisk {
  mount: string;
  percent: number;
}
export interface FrameInterface {
  interface: string;
  bytes_sent_per_second?: number | null;
  bytes_recv_per_second?: number | null;
}
export interface MetricsData {
  timestamp: string;
  cpu_percent: number;
  memory_percent: number;
  memory_total_bytes?: number | null;
  memory_used_bytes?: number | null;
  load1?: number | null;
  uptime_seconds?: number | null;
  cpu_cores?: number | null;
  disks?: FrameDisk[];
  interfaces?: FrameInterface[];
  processes?: Process[];
  resolution?: string;
}

export class SeriesSet {
  readonly cpu = new TimeSeries(1);
  readonly memory = new TimeSeries(1);
  readonly disks = new Map<string, TimeSeries>();
  /** Two columns: received, sent (bytes per second). */
  readonly interfaces = new Map<string, TimeSeries>();
  /** The resolution the last history answer came at. */
  resolution = "raw";

  disk(mount: string): TimeSeries {
    let s = this.disks.get(mount);
    if (!s) this.disks.set(mount, (s = new TimeSeries(1)));
    return s;
  }

  iface(name: string): TimeSeries {
    let s = this.interfaces.get(name);
    if (!s) this.interfaces.set(name, (s = new TimeSeries(2)));
    return s;
  }

  /** A live or history frame's data; returns its time in unix seconds. */
  insertFrame(d: MetricsData): number {
    const t = Date.parse(d.timestamp) / 1000;
    const width = BUCKET_SECONDS[d.resolution ?? "raw"] ?? 0;
    this.cpu.insert(t, [d.cpu_percent], width);
    this.memory.insert(t, [d.memory_percent], width);
    for (const disk of d.disks ?? []) this.disk(disk.mount).insert(t, [disk.percent], width);
    for (const i of d.interfaces ?? []) {
      // The first sample a stream knows has no rate (null): a gap, not a zero.
      if (i.bytes_recv_per_second === undefined && i.bytes_sent_per_second === undefined) continue;
      this.iface(i.interface).insert(
        t,
        [i.bytes_recv_per_second ?? null, i.bytes_sent_per_second ?? null],
        width,
      );
    }
    return t;
  }

  insertSeries(target: TimeSeries, series: Series): void {
    const width = BUCKET_SECONDS[series.resolution] ?? 0;
    this.resolution = series.resolution;
    for (const p of series.points) target.insert(Date.parse(p.time) / 1000, [p.value], width);
  }

  insertRates(target: TimeSeries, series: RateSeries): void {
    const width = BUCKET_SECONDS[series.resolution] ?? 0;
    for (const p of series.points)
      target.insert(Date.parse(p.time) / 1000, [p.recv_per_second, p.sent_per_second], width);
  }

  /** Registers the disks and interfaces the newest sample has, so their history is fetched. */
  know(latest: Latest | null): void {
    if (!latest) return;
    for (const d of latest.disks) this.disk(d.mount);
    for (const i of latest.interfaces) this.iface(i.interface);
  }

  trimBefore(t: number): void {
    this.cpu.trimBefore(t);
    this.memory.trimBefore(t);
    for (const s of this.disks.values()) s.trimBefore(t);
    for (const s of this.interfaces.values()) s.trimBefore(t);
  }

  get newest(): number | undefined {
    return this.cpu.last;
  }
}

/** The ranges of the picker, in seconds. */
export const RANGES: [string, number][] = [
  ["15m", 15 * 60],
  ["1h", 3600],
  ["6h", 6 * 3600],
  ["24h", 86400],
  ["7d", 7 * 86400],
  ["30d", 30 * 86400],
];

export function rangeSeconds(name: string | null): number {
  return RANGES.find(([n]) => n === name)?.[1] ?? 3600;
}
