/** Alerts: the active ones and the history, acknowledge and resolve; live alert frames refresh it. */
import type { Ctx } from "../context";
import type { Alert } from "../lib/api";
import { liveAlertHandled } from "../lib/banner";
import { clear, dataTable, h, timeEl, toast } from "../lib/dom";
import { formatAgo, formatLocal } from "../lib/units";

export function alertsView(ctx: Ctx, host: HTMLElement, serverId: string | null): () => void {
  const active = h("div");
  const history = h("div");
  const more = h("button", { class: "ghost small" }, "Older");
  let cursor: string | null = null;
  let historyRows: Alert[] = [];
  clear(host, h("h2", null, "Active"), active, h("h2", null, "History"), history, more);

  function row(a: Alert): HTMLElement {
    const name = ctx.names.get(a.server_id) ?? a.server_id.slice(0, 8);
    const act = (what: "acknowledge" | "resolve") => async () => {
      try {
        await (what === "acknowledge"
          ? ctx.client.acknowledge(a.episode_id)
          : ctx.client.resolve(a.episode_id));
        toast(what === "acknowledge" ? "Acknowledged" : "Resolved", "ok");
        liveAlertHandled(a.episode_id);
        void reload();
      } catch (e) {
        toast((e as Error).message, "error");
      }
    };
    return h(
      "tr",
      { "data-episode": a.episode_id, class: `alert-row ${a.state}` },
      h("td", null, h("span", { class: `pill sev-${a.severity}` }, a.severity)),
      h("td", null, a.rule_name),
      serverId ? null : h("td", null, h("a", { href: `/servers/${a.server_id}?tab=alerts` }, name)),
      h("td", null, a.message),
      h("td", null, timeEl(a.fired_at ?? a.started_at, formatLocal(a.fired_at ?? a.started_at))),
      h(
        "td",
        null,
        a.state === "firing"
          ? `firing for ${formatAgo(a.fired_at ?? a.started_at).replace(" ago", "")}`
          : a.resolved_at
            ? ["resolved ", timeEl(a.resolved_at, formatAgo(a.resolved_at))]
            : "resolved",
        a.acknowledged_at
          ? h(
              "div",
              { class: "muted" },
              "acknowledged ",
              timeEl(a.acknowledged_at, formatAgo(a.acknowledged_at)),
            )
          : null,
      ),
      h(
        "td",
        { class: "actions" },
        a.state === "firing" && !a.acknowledged_at
          ? h("button", { class: "small", onclick: act("acknowledge") }, "Acknowledge")
          : null,
        a.state === "firing"
          ? h("button", { class: "small ghost", onclick: act("resolve") }, "Resolve")
          : null,
      ),
    );
  }

  function table(rows: Alert[], empty: string): HTMLElement {
    if (rows.length === 0) return h("p", { class: "muted" }, empty);
    return dataTable(
      [
        h("th", null, "Severity"),
        h("th", null, "Rule"),
        serverId ? null : h("th", null, "Server"),
        h("th", null, "Message"),
        h("th", null, "Fired"),
        h("th", null, "State"),
        h("th", null, ""),
      ],
      [...rows.map(row)],
      "data alerts-table",
    );
  }

  async function reload(): Promise<void> {
    try {
      const [firing, recent] = await Promise.all([
        ctx.client.alerts({ state: "firing", server_id: serverId, limit: 200 }),
        ctx.client.alerts({ server_id: serverId, limit: 50 }),
      ]);
      clear(active, table(firing.items, "Nothing is firing."));
      historyRows = recent.items;
      cursor = recent.next_cursor;
      more.hidden = cursor === null;
      clear(history, table(historyRows, "No alerts yet."));
    } catch (e) {
      clear(active, h("p", { class: "error" }, (e as Error).message));
    }
  }

  more.addEventListener("click", () => {
    if (cursor === null) return;
    ctx.client
      .alerts({ server_id: serverId, limit: 50, cursor })
      .then((page) => {
        historyRows = [...historyRows, ...page.items];
        cursor = page.next_cursor;
        more.hidden = cursor === null;
        clear(history, table(historyRows, "No alerts yet."));
      })
      .catch((e: Error) => toast(e.message, "error"));
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAlert = (ev: Event) => {
    const d = (ev as CustomEvent<{ server_id: string }>).detail;
    if (serverId && d.server_id !== serverId) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), 500); // the episode row is written by the engine
  };
  document.addEventListener("fleetpulse:alert", onAlert);
  // While the fleet socket is down (or the API has none), the lists are refetched now and then.
  const poll = setInterval(() => {
    if (!ctx.fleetLive && !document.hidden) void reload();
  }, 10_000);
  void reload();
  return () => {
    clearTimeout(timer);
    clearInterval(poll);
    document.removeEventListener("fleetpulse:alert", onAlert);
  };
}

export function alertsPage(ctx: Ctx, host: HTMLElement): () => void {
  const body = h("div");
  host.append(h("div", { class: "page-head" }, h("h1", null, "Alerts")), body);
  return alertsView(ctx, body, null);
}
