import { describe, expect, it } from "vitest";
import { backoffDelay } from "../src/lib/backoff";

describe("backoffDelay", () => {
  const opts = { baseMs: 500, capMs: 30_000 };

  it("grows exponentially up to the cap at the top of the jitter range", () => {
    const top = () => 0.999999;
    expect(backoffDelay(0, opts, top)).toBe(499);
    expect(backoffDelay(1, opts, top)).toBe(999);
    expect(backoffDelay(3, opts, top)).toBe(3999);
    expect(backoffDelay(6, opts, top)).toBe(29_999);
    expect(backoffDelay(50, opts, top)).toBe(29_999);
  });

  it("is full jitter: anywhere from 0 to the ceiling", () => {
    expect(backoffDelay(4, opts, () => 0)).toBe(0);
    expect(backoffDelay(4, opts, () => 0.5)).toBe(4000);
  });

  it("spreads many clients over the whole window", () => {
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const delays = Array.from({ length: 1000 }, () => backoffDelay(5, opts, rand));
    const ceiling = 500 * 2 ** 5;
    expect(Math.max(...delays)).toBeLessThan(ceiling);
    expect(Math.min(...delays)).toBeLessThan(ceiling * 0.05);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).toBeGreaterThan(ceiling * 0.4);
    expect(mean).toBeLessThan(ceiling * 0.6);
  });
});
