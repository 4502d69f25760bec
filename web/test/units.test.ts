import { describe, expect, it } from "vitest";
import {
  formatAgo,
  formatBytes,
  formatDuration,
  formatPercent,
  formatRate,
  formatUtc,
  plural,
  rateUnit,
} from "../src/lib/units";

describe("units", () => {
  it("scales bytes by 1024 with three significant digits", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(10 * 1024 * 1024 + 512 * 1024)).toBe("10.5 MiB");
    expect(formatBytes(250 * 1024 ** 3)).toBe("250 GiB");
    expect(formatBytes(null)).toBe("–");
    expect(formatBytes(Number.NaN)).toBe("–");
  });

  it("formats rates and percentages, and says no data instead of zero", () => {
    expect(formatRate(2048)).toBe("2.00 KiB/s");
    expect(formatRate(null)).toBe("–");
    expect(formatPercent(12.345)).toBe("12.3 %");
    expect(formatPercent(undefined)).toBe("–");
  });

  it("picks an axis unit that keeps the maximum below 1024", () => {
    expect(rateUnit(500)).toEqual({ unit: "B/s", divisor: 1 });
    expect(rateUnit(5 * 1024 * 1024)).toEqual({ unit: "MiB/s", divisor: 1024 * 1024 });
  });

  it("formats durations and ages", () => {
    expect(formatDuration(45)).toBe("45 s");
    expect(formatDuration(180)).toBe("3 min");
    expect(formatDuration(7500)).toBe("2 h 5 min");
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe("3 d 4 h");
    const now = Date.parse("2026-12-03T10:00:00Z");
    expect(formatAgo("2026-12-03T09:59:48Z", now)).toBe("12 s ago");
    expect(formatAgo(null, now)).toBe("never");
  });

  it("shows UTC for the hover title", () => {
    expect(formatUtc("2026-12-03T10:00:05.123Z")).toBe("2026-12-03 10:00:05 UTC");
  });
});

describe("plural", () => {
  it("counts with the right noun", () => {
    expect(plural(1, "server")).toBe("1 server");
    expect(plural(0, "server")).toBe("0 servers");
    expect(plural(3, "alert")).toBe("3 alerts");
    expect(plural(2, "entry", "entries")).toBe("2 entries");
  });
});
