import { describe, expect, it } from "vitest";
import { PositionTracker } from "../src/lib/positions";

describe("PositionTracker", () => {
  it("keeps the last position and refuses what is not newer", () => {
    const p = new PositionTracker();
    expect(p.resume).toBeNull();
    expect(p.see({ partition: 2, offset: 10 })).toBe(true);
    expect(p.see({ partition: 2, offset: 14 })).toBe(true);
    expect(p.see({ partition: 2, offset: 12 })).toBe(false);
    expect(p.see({ partition: 2, offset: 14 })).toBe(false);
    expect(p.resume).toEqual({ partition: 2, offset: 14 });
  });

  it("accepts history rows without a position and a new partition", () => {
    const p = new PositionTracker();
    p.see({ partition: 1, offset: 100 });
    expect(p.see(null)).toBe(true);
    expect(p.see({ partition: 3, offset: 5 })).toBe(true);
    expect(p.resume).toEqual({ partition: 3, offset: 5 });
  });

  it("hands out a copy", () => {
    const p = new PositionTracker();
    p.see({ partition: 0, offset: 1 });
    const r = p.resume!;
    r.offset = 99;
    expect(p.resume).toEqual({ partition: 0, offset: 1 });
  });
});
