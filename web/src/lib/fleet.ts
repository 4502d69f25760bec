/**
 * The fleet page's data: one row per server from `GET /fleet`, then the fleet socket's
 * `fleet_update` items merged in. Updates are coalesced: whatever arrives between two animation
 * frames is applied once per server at the next frame, so a thousand servers reporting every
 * few seconds cost one render pass per frame, not one per message.
 */
import type { components } from "../api/schema";

type FleetServer = components["schemas"]["FleetServerOut"];

export type Status = FleetServer["status"];

export type Severity = NonNullable<FleetServer["alerts"]["max_severity"]>;

export type Spark = components["schemas"]["SparkOut"];

/** A row of `GET /fleet`; `spark` is null in a row made from `GET /servers` (an API without the
 * fleet summary). */
export type FleetRow = Omit<FleetServer, "spark"> & { spark: Spark | null };

export type FleetUpdate = Partial<FleetRow> & { server_id: string };

/** Writes a sample into the sparkline's buckets, shifting the window forward when it moves on. */
export function sparkPush(spark: Spark, sampleTime: string, cpu: number | null, memory: number | null): void {
  const t = Date.parse(sampleTime);
  const start = Date.parse(spark.start);
  const stepMs = spark.step_seconds * 1000;
  if (Number.isNaN(t) || Number.isNaN(start) || stepMs <= 0) return;
  const n = spark.cpu_percent.length;
  let index = Math.floor((t - start) / stepMs);
  if (index < 0) return; // older than the window
  if (index >= n) {
    const shift = index - n + 1;
    const keep = Math.max(0, n - shift);
    spark.cpu_percent = [...spark.cpu_percent.slice(n - keep), ...Array<null>(n - keep).fill(null)];
    spark.memory_percent = [...spark.memory_percent.slice(n - keep), ...Array<null>(n - keep).fill(null)];
    spark.start = new Date(start + shift * stepMs).toISOString();
    index = n - 1;
  }
  if (cpu !== null) spark.cpu_percent[index] = cpu;
  if (memory !== null) spark.memory_percent[index] = memory;
}

export type Scheduler = (flush: () => void) => void;

export const animationFrame: Scheduler = (flush) => {
  requestAnimationFrame(() => flush());
};

export class FleetStore {
  readonly rows = new Map<string, FleetRow>();
  private pending = new Map<string, FleetUpdate>();
  private scheduled = false;
  /** Called once per flush with the ids of the rows that changed (and whether rows came or went). */
  onFlush: (changed: Set<string>, structural: boolean) => void = () => undefined;
  flushes = 0;

  constructor(private readonly schedule: Scheduler = animationFrame) {}

  /** Replaces every row (the answer of `GET /fleet`). */
  load(rows: FleetRow[]): void {
    this.rows.clear();
    this.pending.clear();
    for (const row of rows) this.rows.set(row.server_id, row);
    this.onFlush(new Set(this.rows.keys()), true);
  }

  /** Queues updates; several for one server before the next frame merge into one. */
  update(items: FleetUpdate[]): void {
    for (const item of items) {
      const queued = this.pending.get(item.server_id);
      this.pending.set(item.server_id, queued ? { ...queued, ...item } : { ...item });
    }
    if (!this.scheduled && this.pending.size > 0) {
      this.scheduled = true;
      this.schedule(() => this.flush());
    }
  }

  /** Applies what is queued; returns the ids changed. */
  flush(): Set<string> {
    this.scheduled = false;
    const changed = new Set<string>();
    let structural = false;
    for (const [id, update] of this.pending) {
      const row = this.rows.get(id);
      if (!row) {
        structural = true; // a server this page does not know: the caller refetches
        continue;
      }
      Object.assign(row, stripUndefined(update));
      if (row.spark && update.sample_time)
        sparkPush(row.spark, update.sample_time, update.cpu_percent ?? null, update.memory_percent ?? null);
      changed.add(id);
    }
    this.pending.clear();
    this.flushes++;
    if (changed.size > 0 || structural) this.onFlush(changed, structural);
    return changed;
  }

  alertCounted(serverId: string, state: string, severity: Severity): void {
    const row = this.rows.get(serverId);
    if (!row) return;
    const firing = Math.max(0, row.alerts.firing + (state === "firing" ? 1 : -1));
    const maxSeverity =
      state === "firing" ? higherSeverity(row.alerts.max_severity, severity) : row.alerts.max_severity;
    this.update([{ server_id: serverId, alerts: { firing, max_severity: firing ? maxSeverity : null } }]);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

const SEVERITY_RANK: Record<Severity, number> = { info: 1, warning: 2, critical: 3 };

export function higherSeverity(a: Severity | null, b: Severity | null): Severity | null {
  if (!a) return b;
  if (!b) return a;
  return (SEVERITY_RANK[b] ?? 0) > (SEVERITY_RANK[a] ?? 0) ? b : a;
}

// --- filter and sort -----------------------------------------------------------------------------

export type SortKey = "name" | "status" | "cpu" | "memory" | "disk" | "alerts" | "last_seen";

const STATUS_RANK: Record<Status, number> = { offline: 0, stale: 1, unknown: 2, online: 3 };

/**
 * The filter language of the fleet page's box: words match the name or a tag (substring, any
 * case); `tag:prod` a tag exactly; `status:offline` (or `is:offline`) a status. All must hold.
 */
export function matches(row: FleetRow, query: string): boolean {
  for (const word of query.toLowerCase().split(/\s+/).filter(Boolean)) {
    const [key, value] = word.includes(":") ? (word.split(":", 2) as [string, string]) : ["", word];
    if (key === "tag") {
      if (!row.tags.some((t) => t.toLowerCase() === value)) return false;
    } else if (key === "status" || key === "is") {
      if (row.status !== value) return false;
    } else if (
      !row.name.toLowerCase().includes(value) &&
      !row.tags.some((t) => t.toLowerCase().includes(value))
    ) {
      return false;
    }
  }
  return true;
}

function numeric(v: number | null): number {
  return v === null ? -1 : v;
}

export function compare(a: FleetRow, b: FleetRow, key: SortKey): number {
  switch (key) {
    case "name":
      return a.name.localeCompare(b.name, undefined, { numeric: true });
    case "status":
      return STATUS_RANK[a.status] - STATUS_RANK[b.status] || a.name.localeCompare(b.name);
    case "cpu":
      return numeric(a.cpu_percent) - numeric(b.cpu_percent);
    case "memory":
      return numeric(a.memory_percent) - numeric(b.memory_percent);
    case "disk":
      return numeric(a.disk_percent) - numeric(b.disk_percent);
    case "alerts":
      return a.alerts.firing - b.alerts.firing;
    case "last_seen":
      return (Date.parse(a.last_seen ?? "") || 0) - (Date.parse(b.last_seen ?? "") || 0);
  }
}

export function view(rows: Iterable<FleetRow>, query: string, key: SortKey, descending: boolean): FleetRow[] {
  const out = [...rows].filter((r) => matches(r, query));
  out.sort((a, b) => (descending ? -compare(a, b, key) : compare(a, b, key)));
  return out;
}
