import { describe, expect, it } from "vitest";
import { LiveSocket, type Clock, type ServerFrame, type WebSocketLike } from "../src/lib/socket";

class FakeClock implements Clock {
  t = 0;
  private seq = 0;
  timers = new Map<number, { at: number; fn: () => void; every?: number }>();
  setTimeout(fn: () => void, ms: number) {
    this.timers.set(++this.seq, { at: this.t + ms, fn });
    return this.seq;
  }
  clearTimeout(h: unknown) {
    this.timers.delete(h as number);
  }
  setInterval(fn: () => void, ms: number) {
    this.timers.set(++this.seq, { at: this.t + ms, fn, every: ms });
    return this.seq;
  }
  clearInterval(h: unknown) {
    this.timers.delete(h as number);
  }
  now() {
    return this.t;
  }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at);
      if (!due.length) break;
      const [id, timer] = due[0]!;
      this.t = timer.at;
      if (timer.every) timer.at += timer.every;
      else this.timers.delete(id);
      timer.fn();
    }
    this.t = end;
  }
  pendingDelays(): number[] {
    return [...this.timers.values()].filter((x) => !x.every).map((x) => x.at - this.t);
  }
}

class FakeWs implements WebSocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code: number) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0));

function setup(opts: { resumable?: boolean; random?: () => number } = {}) {
  const clock = new FakeClock();
  const sockets: FakeWs[] = [];
  const frames: ServerFrame[] = [];
  const states: string[] = [];
  const tokenCalls: boolean[] = [];
  let tokenN = 0;
  const socket = new LiveSocket({
    url: "ws://x/api/v1/ws/metrics/s1",
    token: async (force) => {
      tokenCalls.push(force);
      return `t${++tokenN}`;
    },
    params: () => ({ window_seconds: 900 }),
    onFrame: (f) => frames.push(f),
    onState: (s) => states.push(s),
    resumable: opts.resumable ?? true,
    create: () => {
      const ws = new FakeWs();
      sockets.push(ws);
      return ws;
    },
    clock,
    random: opts.random ?? (() => 0.5),
  });
  return { clock, sockets, frames, states, tokenCalls, socket };
}

describe("LiveSocket", () => {
  it("authenticates first, then delivers frames", async () => {
    const { sockets, frames, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    expect(sockets[0]!.sent[0]).toEqual({ type: "auth", token: "t1", window_seconds: 900 });
    sockets[0]!.frame({ type: "auth_success" });
    sockets[0]!.frame({ type: "metrics", data: {}, position: null, history: true });
    sockets[0]!.frame({ type: "history_end", position: { partition: 1, offset: 7 } });
    sockets[0]!.frame({ type: "metrics", data: {}, position: { partition: 1, offset: 9 } });
    expect(frames.map((f) => f.type)).toEqual(["auth_success", "metrics", "history_end", "metrics"]);
    expect(socket.currentState).toBe("open");
    socket.stop();
  });

  it("reconnects after a drop with resume set to the last position, and drops what it saw twice", async () => {
    const { clock, sockets, frames, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    sockets[0]!.frame({ type: "auth_success" });
    sockets[0]!.frame({ type: "history_end", position: { partition: 1, offset: 7 } });
    sockets[0]!.frame({ type: "metrics", position: { partition: 1, offset: 12 } });
    sockets[0]!.drop(1006);
    clock.advance(30_000);
    await flush();
    expect(sockets).toHaveLength(2);
    sockets[1]!.open();
    expect(sockets[1]!.sent[0]).toMatchObject({ type: "auth", resume: { partition: 1, offset: 12 } });
    sockets[1]!.frame({ type: "auth_success" });
    sockets[1]!.frame({ type: "history_end", position: { partition: 1, offset: 12 } }); // the seam: delivered
    sockets[1]!.frame({ type: "metrics", position: { partition: 1, offset: 12 } }); // a duplicate: dropped
    sockets[1]!.frame({ type: "metrics", position: { partition: 1, offset: 15 } });
    const offsets = frames.map((f) => `${f.type}:${f.position?.offset ?? "-"}`);
    expect(offsets).toEqual([
      "auth_success:-",
      "history_end:7",
      "metrics:12",
      "auth_success:-",
      "history_end:12",
      "metrics:15",
    ]);
    socket.stop();
  });

  it("backs off exponentially with jitter while the API stays away, and resets after a success", async () => {
    const { clock, sockets, socket } = setup({ random: () => 0.999 });
    socket.start();
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      sockets[i]!.drop(1006);
      delays.push(Math.max(...clock.pendingDelays()));
      clock.advance(delays[i]!);
      await flush();
    }
    expect(delays).toEqual([499, 999, 1998, 3996, 7992]);
    sockets[5]!.open();
    sockets[5]!.frame({ type: "auth_success" });
    sockets[5]!.drop(4011);
    expect(Math.max(...clock.pendingDelays())).toBe(499);
    socket.stop();
  });

  it("answers auth_required with a refreshed token on the same socket", async () => {
    const { sockets, tokenCalls, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    sockets[0]!.frame({ type: "auth_success" });
    sockets[0]!.frame({ type: "auth_required", expires_at: "2026-01-01T00:00:00Z" });
    await flush();
    expect(tokenCalls).toEqual([false, true]);
    expect(sockets[0]!.sent.at(-1)).toEqual({ type: "auth", token: "t2" });
    expect(sockets).toHaveLength(1);
    socket.stop();
  });

  it("reconnects at once with a forced refresh after 4001, and stops on a terminal code", async () => {
    const { sockets, tokenCalls, states, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    sockets[0]!.frame({ type: "auth_success" });
    sockets[0]!.drop(4001);
    await flush();
    expect(sockets).toHaveLength(2);
    expect(tokenCalls).toEqual([false, true]);
    sockets[1]!.open();
    sockets[1]!.drop(4404);
    await flush();
    expect(sockets).toHaveLength(2);
    expect(states.at(-1)).toBe("closed");
  });

  it("pings, and treats a silent connection as dead", async () => {
    const { clock, sockets, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    sockets[0]!.frame({ type: "auth_success" });
    clock.advance(25_000);
    expect(sockets[0]!.sent.at(-1)).toEqual({ type: "ping", id: 1 });
    clock.advance(60_000); // no answer to the pings
    await flush();
    expect(sockets[0]!.readyState).toBe(3);
    socket.stop();
  });

  it("forgets positions when a resume is refused (a fresh history follows)", async () => {
    const { clock, sockets, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    sockets[0]!.frame({ type: "auth_success" });
    sockets[0]!.frame({ type: "metrics", position: { partition: 1, offset: 50 } });
    sockets[0]!.frame({
      type: "history_lost",
      requested: { partition: 1, offset: 50 },
      position: null,
      reason: "x",
    });
    expect(socket.positions.resume).toBeNull();
    sockets[0]!.frame({ type: "history_end", position: { partition: 1, offset: 40 } });
    sockets[0]!.frame({ type: "metrics", position: { partition: 1, offset: 41 } });
    expect(socket.positions.resume).toEqual({ partition: 1, offset: 41 });
    clock.advance(1);
    socket.stop();
  });

  it("delivers alert frames whatever their position: they come from another topic, live only", async () => {
    const { sockets, frames, socket } = setup();
    socket.start();
    await flush();
    sockets[0]!.open();
    sockets[0]!.frame({ type: "auth_success" });
    sockets[0]!.frame({ type: "history_end", position: { partition: 1, offset: 500 } });
    sockets[0]!.frame({ type: "metrics", position: { partition: 1, offset: 510 } });
    sockets[0]!.frame({ type: "alert", data: {}, position: { partition: 1, offset: 3 } });
    expect(frames.map((f) => f.type)).toEqual(["auth_success", "history_end", "metrics", "alert"]);
    expect(socket.positions.resume).toEqual({ partition: 1, offset: 510 });
    socket.stop();
  });
});
