import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  expiresWithin,
  fromAnswer,
  refreshDelayMs,
  refreshLeadMs,
  SessionEnded,
  TokenManager,
  type StoredTokens,
  type TokenAnswer,
  type TokenStorage,
} from "../src/lib/tokens";

function memory(initial: StoredTokens | null): TokenStorage & { value: StoredTokens | null } {
  const s = {
    value: initial,
    load: () => (s.value ? { ...s.value } : null),
    save: (t: StoredTokens | null) => {
      s.value = t ? { ...t } : null;
    },
  };
  return s;
}

const noLock = <T>(_: string, fn: () => Promise<T>) => fn();

function answer(n: number, expiresIn = 900): TokenAnswer {
  return { access_token: `a${n}`, refresh_token: `r${n}`, expires_in: expiresIn, user: { email: "u@x.io" } };
}

describe("refresh timing", () => {
  it("refreshes a 15 min token 2 min ahead, and short ones at least 30 s ahead", () => {
    expect(refreshLeadMs(15 * 60_000)).toBe(120_000);
    expect(refreshLeadMs(60_000)).toBe(30_000);
    expect(refreshLeadMs(5 * 60_000)).toBe(60_000);
    const t = fromAnswer(answer(1), 1_000_000);
    expect(refreshDelayMs(t, 1_000_000)).toBe(900_000 - 120_000);
    expect(refreshDelayMs(t, 1_000_000 + 899_000)).toBe(0);
  });

  it("refreshes before the socket's auth_required (60 s before the expiry)", () => {
    const t = fromAnswer(answer(1), 0);
    expect(t.expiresAt - refreshDelayMs(t, 0)).toBeGreaterThan(60_000);
  });

  it("knows when a token expires within a margin", () => {
    const t = fromAnswer(answer(1), 0);
    expect(expiresWithin(t, 30_000, 869_999)).toBe(false);
    expect(expiresWithin(t, 30_000, 870_000)).toBe(true);
  });
});

describe("TokenManager", () => {
  let now = 0;
  beforeEach(() => {
    vi.useFakeTimers();
    now = 0;
  });
  afterEach(() => vi.useRealTimers());

  it("refreshes on its own ahead of the expiry, with the rotated refresh token each time", async () => {
    const storage = memory(fromAnswer(answer(1), 0));
    const used: string[] = [];
    let n = 1;
    const m = new TokenManager(
      storage,
      async (rt) => {
        used.push(rt);
        return answer(++n);
      },
      () => now,
      noLock,
    );
    m.schedule();
    now = 780_000;
    await vi.advanceTimersByTimeAsync(780_000);
    expect(used).toEqual(["r1"]);
    expect(m.current?.access).toBe("a2");
    now += 780_000;
    await vi.advanceTimersByTimeAsync(780_000);
    expect(used).toEqual(["r1", "r2"]);
    m.stop();
  });

  it("shares one refresh between concurrent callers", async () => {
    const storage = memory(fromAnswer(answer(1), 0));
    const refresher = vi.fn(async () => answer(2));
    const m = new TokenManager(storage, refresher, () => now, noLock);
    now = 899_000; // about to expire
    const [a, b] = await Promise.all([m.access(), m.access()]);
    expect(a).toBe("a2");
    expect(b).toBe("a2");
    expect(refresher).toHaveBeenCalledTimes(1);
    m.stop();
  });

  it("uses what another tab already rotated instead of reusing the old refresh token", async () => {
    const storage = memory(fromAnswer(answer(1), 0));
    const refresher = vi.fn(async () => answer(9));
    const m = new TokenManager(storage, refresher, () => now, noLock);
    now = 800_000;
    storage.value = fromAnswer(answer(2), 790_000); // the other tab's refresh
    const fresh = await m.refresh();
    expect(refresher).not.toHaveBeenCalled();
    expect(fresh?.access).toBe("a2");
    m.stop();
  });

  it("ends the session when the refresh is refused", async () => {
    const storage = memory(fromAnswer(answer(1), 0));
    const m = new TokenManager(
      storage,
      async () => {
        throw new SessionEnded("no");
      },
      () => now,
      noLock,
    );
    const events: boolean[] = [];
    m.onChange((s) => events.push(s));
    expect(await m.refresh(true)).toBeNull();
    expect(storage.value).toBeNull();
    expect(events).toEqual([false]);
  });

  it("keeps the session through a network error and retries", async () => {
    const storage = memory(fromAnswer(answer(1), 0));
    let fail = true;
    const m = new TokenManager(
      storage,
      async () => {
        if (fail) throw new TypeError("network");
        return answer(2);
      },
      () => now,
      noLock,
    );
    await expect(m.refresh(true)).rejects.toThrow("network");
    expect(m.current?.access).toBe("a1");
    fail = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(m.current?.access).toBe("a2");
    m.stop();
  });
});
