import { describe, expect, it } from "vitest";
import { TimeSeries, withGaps } from "../src/lib/series";

describe("TimeSeries", () => {
  it("keeps points in time order and one per timestamp, whatever the arrival order", () => {
    const s = new TimeSeries(1);
    s.insert(20, [2]);
    s.insert(10, [1]);
    s.insert(30, [3]);
    s.insert(15, [1.5]);
    s.insert(20, [2.2]); // the same instant again: replaced, not duplicated
    expect(s.xs).toEqual([10, 15, 20, 30]);
    expect(s.ys[0]).toEqual([1, 1.5, 2.2, 3]);
  });

  it("prefers a raw sample over a bucket at the same instant", () => {
    const s = new TimeSeries(1);
    s.insert(60, [5], 0);
    s.insert(60, [9], 60);
    expect(s.ys[0]).toEqual([5]);
  });

  it("trims old points", () => {
    const s = new TimeSeries(2);
    for (let t = 0; t < 10; t++) s.insert(t, [t, -t]);
    s.trimBefore(7);
    expect(s.xs).toEqual([7, 8, 9]);
    expect(s.ys[1]).toEqual([-7, -8, -9]);
  });

  it("estimates the raw step from the newest samples", () => {
    const s = new TimeSeries(1);
    for (let t = 0; t <= 100; t += 5) s.insert(t, [1]);
    expect(s.rawStep()).toBe(5);
  });
});

describe("gaps", () => {
  it("cuts the line where samples are missing, never drawing across an outage", () => {
    const s = new TimeSeries(1);
    for (const t of [0, 5, 10, 15, 60, 65, 70]) s.insert(t, [t]);
    const [xs, ys] = s.toPlot();
    expect(xs).toEqual([0, 5, 10, 15, 20, 60, 65, 70]);
    expect(ys).toEqual([0, 5, 10, 15, null, 60, 65, 70]);
  });

  it("does not cut at ordinary jitter", () => {
    const [xs, ys] = withGaps([0, 5, 11, 15, 21], [[1, 2, 3, 4, 5]], [0, 0, 0, 0, 0], 5);
    expect(xs).toHaveLength(5);
    expect(ys).not.toContain(null);
  });

  it("uses the bucket width for rollups (1h buckets one hour apart are contiguous)", () => {
    const widths = [3600, 3600, 3600, 3600];
    const [xs, ys] = withGaps([0, 3600, 7200, 7200 + 3 * 3600], [[1, 2, 3, 4]], widths, 10);
    expect(xs).toEqual([0, 3600, 7200, 10800, 18000]);
    expect(ys).toEqual([1, 2, 3, null, 4]);
  });

  it("joins live raw samples to the end of bucketed history without a false gap", () => {
    const s = new TimeSeries(1);
    s.insert(0, [1], 60);
    s.insert(60, [2], 60);
    for (const t of [125, 130, 135]) s.insert(t, [3]);
    const [, ys] = s.toPlot();
    expect(ys).not.toContain(null);
  });
});
