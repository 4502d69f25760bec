/** What every page gets: the REST client, the session, the one fleet socket of this tab. */
import { Client, type User } from "./lib/api";
import { setBanner } from "./lib/banner";
import { LiveSocket, type LiveSocketOptions, type ServerFrame } from "./lib/socket";
import type { TokenManager } from "./lib/tokens";

export type Page = (ctx: Ctx, host: HTMLElement) => (() => void) | void;

export interface AlertData {
  event_id: string;
  episode_id: string;
  state: "firing" | "resolved";
  rule_name: string;
  server_id: string;
  metric: string;
  subject: string | null;
  severity: string;
  value: number | null;
  threshold: number;
  time: string;
  message: string;
}

type FrameListener = (frame: ServerFrame) => void;

export class Ctx {
  readonly client: Client;
  me: User | null = null;
  /** Server names by id, for alerts and links (refreshed with the fleet). */
  readonly names = new Map<string, string>();
  private fleetSocket: LiveSocket | null = null;
  private readonly fleetListeners = new Set<FrameListener>();
  private readonly seenAlerts = new Set<string>();

  constructor(readonly tokens: TokenManager) {
    this.client = new Client(tokens);
  }

  wsUrl(path: string): string {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1${path}`;
  }

  /** A live socket on `path` with the session's tokens. */
  socket(path: string, options: Omit<LiveSocketOptions, "url" | "token">): LiveSocket {
    return new LiveSocket({
      url: this.wsUrl(path),
      token: async (force) => {
        if (force) await this.tokens.refresh(false).catch(() => undefined);
        return this.tokens.access(90_000);
      },
      ...options,
    });
  }

  /** Frames of the fleet socket (fleet_update, fleet_changed, alert); returns the unsubscribe. */
  onFleet(listener: FrameListener): () => void {
    this.fleetListeners.add(listener);
    return () => this.fleetListeners.delete(listener);
  }

  /** Alerts seen by any socket of the page go through here once (by event id). */
  alertSeen(data: AlertData): boolean {
    if (this.seenAlerts.has(data.event_id)) return false;
    this.seenAlerts.add(data.event_id);
    if (this.seenAlerts.size > 5000) this.seenAlerts.clear();
    return true;
  }

  /** Whether the fleet socket is live now (pages poll REST while it is not). */
  get fleetLive(): boolean {
    return this.fleetSocket?.currentState === "open";
  }

  startFleet(onAlert: (data: AlertData) => void): void {
    if (this.fleetSocket) return;
    let everOpen = false;
    this.fleetSocket = this.socket("/ws/fleet", {
      onFrame: (frame) => {
        if (frame.type === "alert") {
          const data = frame["data"] as AlertData;
          if (this.alertSeen(data)) onAlert(data);
        }
        if (frame.type === "auth_success" && everOpen) {
          // Reconnected: what changed meanwhile is in a fresh GET /fleet.
          for (const l of this.fleetListeners) l({ type: "fleet_changed" });
        }
        if (frame.type === "auth_success") everOpen = true;
        for (const l of this.fleetListeners) l(frame);
      },
      onState: (state, detail) => {
        if (state === "open") setBanner("fleet", null);
        else if (state === "reconnecting")
          setBanner("fleet", `Live updates disconnected: ${detail}`, "error");
        else if (state === "closed" && detail !== "stopped" && detail !== "signed out")
          setBanner("fleet", `Live updates stopped: ${detail}`, "error");
      },
    }).start();
  }

  stopFleet(): void {
    this.fleetSocket?.stop();
    this.fleetSocket = null;
    setBanner("fleet", null);
  }

  async refreshNames(): Promise<void> {
    const servers = await this.client.servers();
    this.names.clear();
    for (const s of servers) this.names.set(s.id, s.name);
  }
}
