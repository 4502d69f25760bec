import { describe, expect, it } from "vitest";
import { BINARY_INCRS, bytesRange, isolatedPoints } from "../src/lib/scale";
import { formatBytes } from "../src/lib/units";

describe("byte axes", () => {
  it("steps in powers of two, so neighbouring ticks never read the same", () => {
    const labels = BINARY_INCRS.filter((v) => v >= 1 && v <= 1024 ** 3).map(formatBytes);
    expect(new Set(labels).size).toBe(labels.length);
    expect(labels).toContain("512 B");
    expect(labels).toContain("1.00 KiB");
  });

  it("ranges from zero, at least 1 KiB high, with headroom above the top value", () => {
    expect(bytesRange(0.4)).toEqual([0, 1024]);
    expect(bytesRange(null)).toEqual([0, 1024]);
    expect(bytesRange(10_000)).toEqual([0, 11_000]);
  });
});

describe("isolated points", () => {
  it("finds the samples with a gap or the edge on both sides", () => {
    expect(isolatedPoints([1, null, 2, 3, null, 4])).toEqual([0, 5]);
    expect(isolatedPoints([null, null, 7, null])).toEqual([2]);
    expect(isolatedPoints([5])).toEqual([0]);
  });

  it("has nothing to mark where every sample has a neighbour", () => {
    expect(isolatedPoints([1, 2, null, 3, 4])).toBeNull();
    expect(isolatedPoints([])).toBeNull();
    expect(isolatedPoints([null, null])).toBeNull();
  });
});
