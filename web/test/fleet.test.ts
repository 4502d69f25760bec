import { describe, expect, it } from "vitest";
import { FleetStore, matches, sparkPush, view, type FleetRow, type Spark } from "../src/lib/fleet";

function row(id: string, extra: Partial<FleetRow> = {}): FleetRow {
  return {
    server_id: id,
    name: id,
    tags: [],
    role: "owner",
    status: "online",
    last_seen: null,
    sample_time: null,
    cpu_percent: null,
    memory_percent: null,
    disk_percent: null,
    disk_mount: null,
    spark: null,
    alerts: { firing: 0, max_severity: null },
    ...extra,
  };
}

describe("FleetStore coalescing", () => {
  it("applies many updates once per frame, the newest value winning per server", () => {
    const queued: (() => void)[] = [];
    const store = new FleetStore((f) => queued.push(f));
    store.load([row("a"), row("b")]);
    const flushed: Set<string>[] = [];
    store.onFlush = (changed) => flushed.push(changed);
    for (let i = 0; i < 100; i++) store.update([{ server_id: "a", cpu_percent: i }]);
    store.update([
      { server_id: "b", status: "offline" },
      { server_id: "a", memory_percent: 5 },
    ]);
    expect(queued).toHaveLength(1); // one frame scheduled for 102 updates
    queued[0]!();
    expect(flushed).toEqual([new Set(["a", "b"])]);
    expect(store.rows.get("a")).toMatchObject({ cpu_percent: 99, memory_percent: 5 });
    expect(store.rows.get("b")!.status).toBe("offline");
    store.update([{ server_id: "a", cpu_percent: 1 }]);
    expect(queued).toHaveLength(2);
  });

  it("reports an unknown server as a structural change (the page refetches)", () => {
    const store = new FleetStore((f) => f());
    store.load([row("a")]);
    let structural = false;
    store.onFlush = (_, s) => (structural = s);
    store.update([{ server_id: "new", status: "online" }]);
    expect(structural).toBe(true);
  });

  it("counts alerts up and down from live alert frames", () => {
    const store = new FleetStore((f) => f());
    store.load([row("a")]);
    store.alertCounted("a", "firing", "warning");
    store.alertCounted("a", "firing", "critical");
    expect(store.rows.get("a")!.alerts).toEqual({ firing: 2, max_severity: "critical" });
    store.alertCounted("a", "resolved", "critical");
    store.alertCounted("a", "resolved", "warning");
    expect(store.rows.get("a")!.alerts).toEqual({ firing: 0, max_severity: null });
  });
});

describe("sparkline", () => {
  const spark = (): Spark => ({
    start: "2026-12-03T10:00:00.000Z",
    step_seconds: 60,
    cpu_percent: [1, 2, 3],
    memory_percent: [4, 5, 6],
  });
  it("writes into the current bucket", () => {
    const s = spark();
    sparkPush(s, "2026-12-03T10:02:30Z", 9, null);
    expect(s.cpu_percent).toEqual([1, 2, 9]);
    expect(s.memory_percent).toEqual([4, 5, 6]);
  });
  it("shifts the window when time moves on, leaving missing minutes empty", () => {
    const s = spark();
    sparkPush(s, "2026-12-03T10:04:10Z", 7, 8);
    expect(s.start).toBe("2026-12-03T10:02:00.000Z");
    expect(s.cpu_percent).toEqual([3, null, 7]);
    expect(s.memory_percent).toEqual([6, null, 8]);
  });
});

describe("filter and sort", () => {
  const rows = [
    row("web-1", { tags: ["prod", "eu"], cpu_percent: 50 }),
    row("web-2", { tags: ["staging"], cpu_percent: 10, status: "offline" }),
    row("db-1", { tags: ["prod"], cpu_percent: null }),
  ];
  it("matches names, tags and statuses", () => {
    expect(rows.filter((r) => matches(r, "web")).map((r) => r.name)).toEqual(["web-1", "web-2"]);
    expect(rows.filter((r) => matches(r, "tag:prod")).map((r) => r.name)).toEqual(["web-1", "db-1"]);
    expect(rows.filter((r) => matches(r, "status:offline")).map((r) => r.name)).toEqual(["web-2"]);
    expect(rows.filter((r) => matches(r, "prod web")).map((r) => r.name)).toEqual(["web-1"]);
  });
  it("sorts with missing values last when descending", () => {
    expect(view(rows, "", "cpu", true).map((r) => r.name)).toEqual(["web-1", "web-2", "db-1"]);
    expect(view(rows, "", "status", false).map((r) => r.name)).toEqual(["web-2", "db-1", "web-1"]);
  });
});
