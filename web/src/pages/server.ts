/**
 * A server's page: a header with its state now, and tabs kept in the URL (`?tab=`). The page
 * owns the server's metrics socket (history of the last minutes, then live, resumed after a
 * drop), so every tab sees live processes and the stale banner works wherever the user is.
 */
import type { AlertData, Ctx } from "../context";
import { ApiError, type Server } from "../lib/api";
import { setBanner } from "../lib/banner";
import { clear, h, setText, timeEl } from "../lib/dom";
import { SeriesSet, type MetricsData } from "../lib/metrics";
import { setQuery } from "../lib/router";
import type { LiveSocket } from "../lib/socket";
import { formatAgo, formatBytes, formatDuration, formatLocal, formatPercent } from "../lib/units";
import { alertsTab } from "./server-alerts";
import { logsTab } from "./server-logs";
import { auditTab, keysTab, settingsTab, sharingTab } from "./server-manage";
import { metricsTab } from "./server-metrics";
import { commandsTab, containersTab, processesTab } from "./server-ops";

/** What the tabs share: the server, its series, the newest frame, listeners for live data. */
export class ServerLive {
  readonly series = new SeriesSet();
  latest: MetricsData | null = null;
  lastFrameAt = 0;
  socket: LiveSocket | null = null;
  socketState = "connecting";
  private listeners = new Set<
    (kind: "metrics" | "history_end" | "alert" | "history_lost", data: unknown) => void
  >();

  constructor(
    readonly ctx: Ctx,
    public server: Server,
  ) {}

  listen(
    fn: (kind: "metrics" | "history_end" | "alert" | "history_lost", data: unknown) => void,
  ): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(kind: "metrics" | "history_end" | "alert" | "history_lost", data: unknown): void {
    for (const l of this.listeners) l(kind, data);
  }

  get canOperate(): boolean {
    return this.server.role === "owner" || this.server.role === "operator";
  }

  get isOwner(): boolean {
    return this.server.role === "owner";
  }
}

export type Tab = (live: ServerLive, host: HTMLElement) => (() => void) | void;

const TABS: [string, string, Tab, (live: ServerLive) => boolean][] = [
  ["metrics", "Metrics", metricsTab, () => true],
  ["processes", "Processes", processesTab, () => true],
  ["containers", "Containers", containersTab, () => true],
  ["logs", "Logs", logsTab, () => true],
  ["alerts", "Alerts", alertsTab, () => true],
  ["commands", "Commands", commandsTab, (l) => l.canOperate],
  ["keys", "API keys", keysTab, (l) => l.isOwner],
  ["sharing", "Sharing", sharingTab, () => true],
  ["audit", "Audit", auditTab, (l) => l.isOwner],
  ["settings", "Settings", settingsTab, (l) => l.isOwner],
];

/** A server is stale when nothing came for this many typical intervals. */
const STALE_INTERVALS = 3;

export function serverPage(ctx: Ctx, host: HTMLElement): () => void {
  const id = location.pathname.split("/")[2] ?? "";
  let destroyed = false;
  let destroyTab: (() => void) | void;
  let live: ServerLive | null = null;
  const cleanups: (() => void)[] = [];
  host.append(h("p", { class: "muted" }, "Loading…"));

  const title = h("h1", null);
  const status = h("span", { class: "status" });
  const role = h("span", { class: "pill" });
  const seen = h("span", { class: "muted" });
  const facts = h("div", { class: "facts" });
  const tabs = h("nav", { class: "tabs", "aria-label": "Server" });
  const body = h("section", { class: "tab-body" });

  function renderHead(): void {
    if (!live) return;
    const s = live.server;
    setText(title, s.name);
    status.className = `status s-${s.status}`;
    setText(status, s.status);
    setText(role, s.role);
    clear(seen, "last seen ", s.last_seen ? timeEl(s.last_seen, formatAgo(s.last_seen)) : "never");
    const d = live.latest;
    clear(
      facts,
      fact("CPU", d ? formatPercent(d.cpu_percent) : "–"),
      fact(
        "Memory",
        d
          ? `${formatPercent(d.memory_percent)}${d.memory_total_bytes ? ` of ${formatBytes(d.memory_total_bytes)}` : ""}`
          : "–",
      ),
      fact("Load", d?.load1 != null ? d.load1.toFixed(2) : "–"),
      fact("Cores", d?.cpu_cores != null ? String(d.cpu_cores) : "–"),
      fact("Uptime", d?.uptime_seconds != null ? formatDuration(d.uptime_seconds) : "–"),
      fact("Sample", d ? timeEl(d.timestamp, formatLocal(d.timestamp)) : "–"),
    );
  }

  function checkStale(): void {
    if (!live) return;
    const s = live.server;
    const step = live.series.cpu.rawStep() || 10;
    const newest = live.series.newest;
    const silentFor = newest ? Date.now() / 1000 - newest : Infinity;
    if (s.status === "offline") {
      setBanner(
        "server",
        `${s.name} is offline (last seen ${formatAgo(s.last_seen)}). Its charts stop where its data stops.`,
      );
    } else if (live.socketState === "open" && newest && silentFor > STALE_INTERVALS * step + 5) {
      setBanner("server", `No data from ${s.name} for ${formatDuration(silentFor)}: what is shown is stale.`);
    } else if (s.status === "stale") {
      setBanner("server", `${s.name}'s data is stale (last seen ${formatAgo(s.last_seen)}).`);
    } else {
      setBanner("server", null);
    }
  }

  function showTab(name: string): void {
    if (!live) return;
    const available = TABS.filter(([, , , visible]) => visible(live!));
    const tab = available.find(([n]) => n === name) ?? available[0]!;
    for (const a of tabs.querySelectorAll<HTMLAnchorElement>("a")) {
      const active = a.dataset["tab"] === tab[0];
      a.classList.toggle("active", active);
      if (active) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (destroyTab) destroyTab();
    clear(body);
    destroyTab = tab[2](live, body);
  }

  async function start(): Promise<void> {
    let server: Server;
    try {
      server = await ctx.client.server(id);
    } catch (e) {
      clear(
        host,
        h(
          "h1",
          null,
          e instanceof ApiError && e.status === 404 ? "No such server" : "Could not load the server",
        ),
        h("p", null, (e as Error).message),
        h("p", null, h("a", { href: "/" }, "Back to the fleet")),
      );
      return;
    }
    if (destroyed) return;
    const l = new ServerLive(ctx, server);
    live = l;
    ctx.names.set(server.id, server.name);
    document.title = `${server.name} · FleetPulse`;
    clear(
      host,
      h(
        "div",
        { class: "page-head" },
        h("a", { href: "/", class: "back", "aria-label": "Fleet" }, "←"),
        title,
        status,
        role,
        seen,
      ),
      facts,
      tabs,
      body,
    );
    for (const [name, label, , visible] of TABS) {
      if (!visible(l)) continue;
      tabs.append(h("a", { href: `?tab=${name}`, "data-tab": name }, label));
    }
    tabs.addEventListener("click", (ev) => {
      const a = (ev.target as Element).closest<HTMLAnchorElement>("a[data-tab]");
      if (!a) return;
      ev.preventDefault();
      ev.stopPropagation();
      setQuery({ tab: a.dataset["tab"]!, from: null, to: null }, true);
      showTab(a.dataset["tab"]!);
    });
    const onPop = () => showTab(new URLSearchParams(location.search).get("tab") ?? "metrics");
    window.addEventListener("popstate", onPop);
    cleanups.push(() => window.removeEventListener("popstate", onPop));

    l.socket = ctx
      .socket(`/ws/metrics/${server.id}`, {
        resumable: true,
        // A few minutes of raw history from the socket: the seam with the REST history of the
        // chosen range (the two merge by timestamp), then live.
        params: () => ({ window_seconds: 300 }),
        onFrame: (frame) => {
          if (frame.type === "metrics") {
            const data = frame["data"] as MetricsData;
            l.series.insertFrame(data);
            if (!l.latest || data.timestamp >= l.latest.timestamp) {
              l.latest = data;
              if (!frame["history"]) {
                l.server.status = "online";
                l.server.last_seen = new Date().toISOString();
              }
            }
            l.lastFrameAt = Date.now();
            l.emit("metrics", data);
            scheduleHead();
          } else if (frame.type === "history_end") {
            l.emit("history_end", frame["position"]);
          } else if (frame.type === "history_lost") {
            l.emit("history_lost", frame);
          } else if (frame.type === "alert") {
            const data = frame["data"] as AlertData;
            l.emit("alert", data);
            if (ctx.alertSeen(data))
              document.dispatchEvent(new CustomEvent("fleetpulse:live-alert", { detail: data }));
          }
        },
        onState: (state, detail) => {
          l.socketState = state;
          if (state === "open") setBanner("server-socket", null);
          else if (state === "reconnecting")
            setBanner("server-socket", `${server.name}: live data disconnected (${detail})`, "error");
          else if (state === "closed" && detail !== "stopped")
            setBanner("server-socket", `${server.name}: live data stopped (${detail})`, "error");
        },
      })
      .start();
    cleanups.push(() => l.socket?.stop());
    // The fleet socket says when this server goes offline or comes back.
    cleanups.push(
      ctx.onFleet((frame) => {
        if (frame.type !== "fleet_update") return;
        for (const u of frame["data"] as {
          server_id: string;
          status?: Server["status"];
          last_seen?: string;
        }[]) {
          if (u.server_id !== server.id) continue;
          if (u.status) l.server.status = u.status;
          if (u.last_seen) l.server.last_seen = u.last_seen;
          scheduleHead();
        }
      }),
    );
    // Without a fleet socket, the server's own answer still tells (every 15 s).
    const poll = setInterval(() => {
      ctx.client
        .server(server.id)
        .then((s) => {
          l.server = { ...l.server, status: s.status, last_seen: s.last_seen };
          scheduleHead();
        })
        .catch(() => undefined);
    }, 15_000);
    const staleTimer = setInterval(() => {
      checkStale();
      renderHead();
    }, 2000);
    cleanups.push(
      () => clearInterval(poll),
      () => clearInterval(staleTimer),
    );
    renderHead();
    showTab(new URLSearchParams(location.search).get("tab") ?? "metrics");
  }

  let headPending = false;
  function scheduleHead(): void {
    if (headPending) return;
    headPending = true;
    requestAnimationFrame(() => {
      headPending = false;
      renderHead();
      checkStale();
    });
  }

  void start();
  return () => {
    destroyed = true;
    if (destroyTab) destroyTab();
    for (const c of cleanups) c();
    setBanner("server", null);
    setBanner("server-socket", null);
    document.title = "FleetPulse";
  };
}

function fact(label: string, value: string | Node): HTMLElement {
  return h(
    "div",
    { class: "fact" },
    h("span", { class: "label" }, label),
    h("span", { class: "value" }, value),
  );
}
