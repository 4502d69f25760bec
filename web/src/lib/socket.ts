/**
 * A live socket of the API (docs/live.md): authenticates with the first frame, answers
 * `auth_required` with a fresh token, keeps the last position it saw and reconnects with
 * `resume` after a drop, waiting an exponential backoff with full jitter between attempts.
 *
 * Close codes 4000-4099 (and transport drops: 1001, 1006, 1011, 1012...) reconnect; 4400-4499
 * are terminal (the same request would fail again) and end the socket with a reason. A JSON
 * ping every `pingMs` detects a dead connection that the browser has not noticed.
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
import { PositionTracker, type Position } from "./positions";

export type SocketState = "connecting" | "open" | "reconnecting" | "closed";

export interface ServerFrame {
  type: string;
  position?: Position | null;
  [key: string]: unknown;
}

export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  now(): number;
}

export const realClock: Clock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
  clearInterval: (h) => globalThis.clearInterval(h as ReturnType<typeof setInterval>),
  now: () => Date.now(),
};

export interface LiveSocketOptions {
  url: string;
  /** A valid access token (null: signed out, the socket ends). `force` asks for a refreshed one. */
  token(force: boolean): Promise<string | null>;
  /** Extra fields of the first auth frame (window_seconds, resolution, lines). */
  params?: () => Record<string, unknown>;
  onFrame(frame: ServerFrame): void;
  onState?(state: SocketState, detail: string): void;
  /** Whether to send `resume` with the last position seen (the metrics and logs sockets). */
  resumable?: boolean;
  /** The frames whose positions belong to the resumable stream. Alert frames carry positions of
   * another topic (alerts are live only, never resumed): they must neither be dropped by nor move
   * the stream's position. */
  streamTypes?: readonly string[];
  backoff?: BackoffOptions;
  pingMs?: number;
  create?: (url: string) => WebSocketLike;
  clock?: Clock;
  random?: () => number;
}

const OPEN = 1;
const STREAM_TYPES = ["metrics", "log", "history_end"];

export function isTerminal(code: number): boolean {
  return code >= 4400 && code < 4500;
}

export class LiveSocket {
  readonly positions = new PositionTracker();
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private stopped = false;
  private retryTimer: unknown = null;
  private pingTimer: unknown = null;
  private pingId = 0;
  private lastHeard = 0;
  private authed = false;
  private state: SocketState = "connecting";
  private readonly clock: Clock;

  constructor(private readonly options: LiveSocketOptions) {
    this.clock = options.clock ?? realClock;
  }

  get currentState(): SocketState {
    return this.state;
  }

  /** Reconnect attempts since the last successful auth. */
  get attempts(): number {
    return this.attempt;
  }

  start(): this {
    this.stopped = false;
    void this.connect(false);
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      ws.close(1000, "page closed");
    }
    this.setState("closed", "stopped");
  }

  private setState(state: SocketState, detail: string): void {
    this.state = state;
    this.options.onState?.(state, detail);
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    if (this.pingTimer !== null) this.clock.clearInterval(this.pingTimer);
    this.retryTimer = this.pingTimer = null;
  }

  private async connect(forceToken: boolean): Promise<void> {
    if (this.stopped) return;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", "connecting");
    let token: string | null;
    try {
      token = await this.options.token(forceToken);
    } catch {
      this.retry("could not refresh the session");
      return;
    }
    if (this.stopped) return;
    if (token === null) {
      this.stopped = true;
      this.setState("closed", "signed out");
      return;
    }
    const create = this.options.create ?? ((url: string) => new WebSocket(url) as unknown as WebSocketLike);
    const ws = create(this.options.url);
    this.ws = ws;
    this.authed = false;
    ws.onopen = () => {
      const frame: Record<string, unknown> = { type: "auth", token, ...(this.options.params?.() ?? {}) };
      const resume = this.options.resumable ? this.positions.resume : null;
      if (resume) frame["resume"] = resume;
      ws.send(JSON.stringify(frame));
      this.lastHeard = this.clock.now();
      this.startPing(ws);
    };
    ws.onmessage = (ev) => this.receive(ws, ev.data);
    ws.onerror = () => undefined; // onclose follows and decides
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
  }

  private startPing(ws: WebSocketLike): void {
    const every = this.options.pingMs ?? 25_000;
    if (this.pingTimer !== null) this.clock.clearInterval(this.pingTimer);
    this.pingTimer = this.clock.setInterval(() => {
      if (ws !== this.ws || ws.readyState !== OPEN) return;
      if (this.clock.now() - this.lastHeard > 2 * every + 5_000) {
        ws.close(4000, "no answer to pings"); // a dead connection: reconnect
        return;
      }
      ws.send(JSON.stringify({ type: "ping", id: ++this.pingId }));
    }, every);
  }

  private receive(ws: WebSocketLike, data: unknown): void {
    if (ws !== this.ws) return;
    this.lastHeard = this.clock.now();
    let frame: ServerFrame;
    try {
      frame = JSON.parse(String(data)) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case "auth_success":
        this.authed = true;
        this.attempt = 0;
        this.setState("open", "live");
        break;
      case "auth_required":
        void this.options.token(true).then(
          (token) => {
            if (token && ws === this.ws && ws.readyState === OPEN)
              ws.send(JSON.stringify({ type: "auth", token }));
          },
          () => undefined, // no fresh token: the server closes with 4001 and we reconnect
        );
        return;
      case "pong":
        return;
      case "history_lost":
        // The resume was refused: a fresh history follows, positions start again.
        if (!frame["position"]) this.positions.reset();
        break;
    }
    const streamTypes = this.options.streamTypes ?? STREAM_TYPES;
    if (this.options.resumable && frame.position && streamTypes.includes(frame.type)) {
      // The seam comes back with the very position a resume sent: always delivered.
      const fresh = this.positions.see(frame.position);
      if (!fresh && frame.type !== "history_end") return; // seen already (a replayed overlap)
    }
    this.options.onFrame(frame);
  }

  private closed(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.pingTimer !== null) this.clock.clearInterval(this.pingTimer);
    this.pingTimer = null;
    if (this.stopped) return;
    if (isTerminal(code)) {
      this.stopped = true;
      this.setState("closed", reason || `closed (${code})`);
      return;
    }
    if (code === 4001) {
      // The token expired: reconnect at once with a refreshed one (once; then back off).
      if (this.authed || this.attempt === 0) {
        this.attempt++;
        void this.connect(true);
        return;
      }
    }
    this.retry(reason || `connection lost (${code})`);
  }

  private retry(detail: string): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF, this.options.random);
    this.attempt++;
    this.setState("reconnecting", `${detail}; retrying in ${Math.ceil(delay / 1000)} s`);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      void this.connect(false);
    }, delay);
  }
}
