/**
 * Alert rules: list, create, edit, delete; before saving, a backtest replays the stored history
 * through the engine's own evaluation ("would have fired 3 times in the last 7 days") and the
 * episodes are drawn on the metric's chart with the threshold.
 */
import type { Ctx } from "../context";
import type { Backtest, RuleIn, RuleOut, Server } from "../lib/api";
import { Chart, COLORS } from "../lib/chart";
import { clear, confirmDialog, dataTable, h, toast } from "../lib/dom";
import { SeriesSet } from "../lib/metrics";
import { setQuery } from "../lib/router";
import type { TimeSeries } from "../lib/series";
import { formatDuration } from "../lib/units";

const METRICS: [string, string][] = [
  ["cpu", "CPU %"],
  ["memory", "Memory %"],
  ["disk", "Disk used % (a mount)"],
  ["net_rx", "Network received B/s (an interface)"],
  ["net_tx", "Network sent B/s (an interface)"],
  ["load1", "Load 1 min"],
  ["load5", "Load 5 min"],
  ["load15", "Load 15 min"],
  ["no_data", "No data (the server goes silent)"],
];
const COMPARISONS: [string, string][] = [
  ["gt", ">"],
  ["gte", "≥"],
  ["lt", "<"],
  ["lte", "≤"],
];

export function describeRule(r: RuleIn, names: Map<string, string>): string {
  const where = r.server_id ? (names.get(r.server_id) ?? r.server_id.slice(0, 8)) : "all my servers";
  if (r.metric === "no_data")
    return `${where}: no data for ${r.no_data_intervals} intervals of ${r.interval_seconds} s`;
  const op = COMPARISONS.find(([c]) => c === r.comparison)?.[1] ?? r.comparison;
  const subject = r.subject ? ` ${r.subject}` : "";
  const forText = r.for_seconds ? ` for ${formatDuration(r.for_seconds)}` : "";
  const clearText = r.clear_threshold !== null ? `, clears at ${r.clear_threshold}` : "";
  return `${where}: ${r.metric}${subject} ${op} ${r.threshold}${forText}${clearText}`;
}

/** "would have fired 3 times in the last 7 days" */
export function backtestSentence(episodes: number, days: number): string {
  const times =
    episodes === 0
      ? "would not have fired"
      : `would have fired ${episodes === 1 ? "once" : `${episodes} times`}`;
  return `${times} in the last ${days === 1 ? "day" : `${days} days`}`;
}

export function rulesPage(ctx: Ctx, host: HTMLElement): () => void {
  const params = new URLSearchParams(location.search);
  const list = h("div");
  const editor = h("div");
  let servers: Server[] = [];
  let chart: Chart | null = null;
  clear(
    host,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Rules"),
      h("span", { class: "spacer" }),
      h(
        "button",
        { class: "primary", id: "new-rule", disabled: true, onclick: () => edit(null) },
        "New rule",
      ),
    ),
    editor,
    list,
  );

  async function load(): Promise<void> {
    try {
      const [rules, srv] = await Promise.all([ctx.client.rules(), ctx.client.servers()]);
      servers = srv;
      for (const s of srv) ctx.names.set(s.id, s.name);
      host.querySelector<HTMLButtonElement>("#new-rule")!.disabled = false; // the server list is known
      const filterServer = params.get("server");
      const shown = filterServer
        ? rules.filter((r) => r.rule.server_id === filterServer || r.rule.server_id === null)
        : rules;
      clear(
        list,
        shown.length === 0
          ? h("p", { class: "muted" }, "No rules yet.")
          : dataTable(
              [
                h("th", null, "Name"),
                h("th", null, "Condition"),
                h("th", null, "Severity"),
                h("th", null, "Origin"),
                h("th", null, ""),
              ],
              [
                ...shown.map((r) =>
                  h(
                    "tr",
                    { class: r.rule.enabled ? "" : "muted" },
                    h("td", null, r.rule.name),
                    h("td", null, describeRule(r.rule, ctx.names)),
                    h("td", null, h("span", { class: `pill sev-${r.rule.severity}` }, r.rule.severity)),
                    h("td", null, r.rule.origin),
                    h(
                      "td",
                      { class: "actions" },
                      r.rule.origin === "code"
                        ? h("span", { class: "muted" }, "deployed as code")
                        : [
                            h("button", { class: "small", onclick: () => edit(r) }, "Edit"),
                            h("button", { class: "small danger", onclick: () => void remove(r) }, "Delete"),
                          ],
                    ),
                  ),
                ),
              ],
            ),
      );
      if (params.get("edit") === "new" && !editor.firstChild) edit(null);
    } catch (e) {
      clear(list, h("p", { class: "error" }, (e as Error).message));
    }
  }

  async function remove(r: RuleOut): Promise<void> {
    if (!(await confirmDialog(`Delete the rule ${r.rule.name}?`, "Delete"))) return;
    ctx.client.deleteRule(r.id).then(load, (e: Error) => toast(e.message, "error"));
  }

  function edit(existing: RuleOut | null): void {
    chart?.destroy();
    chart = null;
    const r: RuleIn = existing?.rule ?? {
      server_id: params.get("server") ?? servers[0]?.id ?? null,
      name: "",
      metric: "cpu",
      subject: null,
      comparison: "gt",
      threshold: 90,
      for_seconds: 60,
      clear_threshold: null,
      clear_for_seconds: 0,
      severity: "warning",
      interval_seconds: 10,
      no_data_intervals: 3,
      enabled: true,
    };
    const f = {
      name: h("input", { value: r.name, required: true, maxlength: 200, id: "rule-name" }),
      server: h(
        "select",
        { id: "rule-server" },
        h("option", { value: "" }, "All my servers"),
        ...servers.filter((s) => s.role !== "viewer").map((s) => h("option", { value: s.id }, s.name)),
      ),
      metric: h("select", { id: "rule-metric" }, ...METRICS.map(([v, l]) => h("option", { value: v }, l))),
      subject: h("input", { value: r.subject ?? "", placeholder: "/ or eth0", id: "rule-subject" }),
      comparison: h(
        "select",
        { id: "rule-comparison" },
        ...COMPARISONS.map(([v, l]) => h("option", { value: v }, l)),
      ),
      threshold: h("input", {
        type: "number",
        step: "any",
        value: r.threshold,
        required: true,
        id: "rule-threshold",
      }),
      forSeconds: h("input", { type: "number", min: 0, step: 1, value: r.for_seconds, id: "rule-for" }),
      clearThreshold: h("input", {
        type: "number",
        step: "any",
        value: r.clear_threshold ?? "",
        placeholder: "the threshold",
        id: "rule-clear",
      }),
      clearFor: h("input", {
        type: "number",
        min: 0,
        step: 1,
        value: r.clear_for_seconds,
        id: "rule-clear-for",
      }),
      severity: h(
        "select",
        { id: "rule-severity" },
        ...["info", "warning", "critical"].map((s) => h("option", { value: s }, s)),
      ),
      interval: h("input", {
        type: "number",
        min: 1,
        step: 1,
        value: r.interval_seconds,
        id: "rule-interval",
      }),
      noData: h("input", { type: "number", min: 1, step: 1, value: r.no_data_intervals, id: "rule-no-data" }),
      enabled: h("input", { type: "checkbox", checked: r.enabled, id: "rule-enabled" }),
      days: h(
        "select",
        { id: "backtest-days" },
        h("option", { value: "1" }, "last day"),
        h("option", { value: "7" }, "last 7 days"),
      ),
    };
    f.server.value = r.server_id ?? "";
    f.metric.value = r.metric;
    f.comparison.value = r.comparison;
    f.severity.value = r.severity;
    f.days.value = "7";
    const verdict = h("p", { class: "verdict", id: "backtest-verdict", "aria-live": "polite" });
    const chartBox = h("div");
    const save = h(
      "button",
      { class: "primary", type: "submit", id: "save-rule" },
      existing ? "Save" : "Create",
    );
    const preview = h("button", { type: "button", id: "run-backtest" }, "Backtest");

    const read = (): RuleIn => ({
      server_id: f.server.value || null,
      name: f.name.value.trim() || "unnamed rule",
      metric: f.metric.value as RuleIn["metric"],
      subject: f.subject.value.trim() || null,
      comparison: f.comparison.value as RuleIn["comparison"],
      threshold: Number(f.threshold.value),
      for_seconds: Number(f.forSeconds.value || 0),
      clear_threshold: f.clearThreshold.value === "" ? null : Number(f.clearThreshold.value),
      clear_for_seconds: Number(f.clearFor.value || 0),
      severity: f.severity.value as RuleIn["severity"],
      interval_seconds: Number(f.interval.value || 10),
      no_data_intervals: Number(f.noData.value || 3),
      enabled: f.enabled.checked,
    });

    const field = (label: string, el: HTMLElement, hint?: string) =>
      h("label", null, h("span", null, label), el, hint ? h("small", { class: "muted" }, hint) : null);
    const form = h(
      "form",
      { class: "card rule-form" },
      h("h2", null, existing ? `Edit ${r.name}` : "New rule"),
      h(
        "div",
        { class: "grid" },
        field("Name", f.name),
        field("Servers", f.server),
        field("Metric", f.metric),
        field("Mount or interface", f.subject, "disk and network rules; empty: any"),
        field("Fires when", f.comparison),
        field("Threshold", f.threshold),
        field("For (s)", f.forSeconds, "the condition must hold this long"),
        field("Clears at", f.clearThreshold, "hysteresis; empty: the threshold"),
        field("Clear for (s)", f.clearFor),
        field("Severity", f.severity),
        field("Agent interval (s)", f.interval),
        field("No data after (intervals)", f.noData),
      ),
      h("label", { class: "check" }, f.enabled, " enabled"),
      h(
        "div",
        { class: "row" },
        preview,
        f.days,
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"),
        save,
      ),
      verdict,
      chartBox,
    );

    function close(): void {
      chart?.destroy();
      chart = null;
      clear(editor);
      setQuery({ edit: null });
    }

    async function runBacktest(): Promise<void> {
      const rule = read();
      const days = Number(f.days.value);
      const end = new Date();
      const start = new Date(end.getTime() - days * 86400_000);
      verdict.textContent = "Replaying the history…";
      preview.disabled = true;
      try {
        const result: Backtest = await ctx.client.backtest(rule, start, end);
        const n = result.episodes.length;
        verdict.textContent =
          `This rule ${backtestSentence(n, days)}` +
          (result.servers.length > 1 ? ` across ${result.servers.length} servers.` : ".");
        verdict.dataset["episodes"] = String(n);
        const serverId = rule.server_id ?? result.episodes[0]?.server_id ?? result.servers[0];
        if (serverId) await drawBacktest(serverId, rule, result, start, end);
      } catch (e) {
        verdict.textContent = `Backtest refused: ${(e as Error).message}`;
      } finally {
        preview.disabled = false;
      }
    }

    async function drawBacktest(
      serverId: string,
      rule: RuleIn,
      result: Backtest,
      start: Date,
      end: Date,
    ): Promise<void> {
      const set = new SeriesSet();
      let target: TimeSeries = set.cpu;
      let column = 0;
      const c = ctx.client;
      const auto = "auto";
      if (rule.metric === "memory") {
        set.insertSeries(set.memory, await c.history(serverId, "memory_percent", start, end, auto));
        target = set.memory;
      } else if (rule.metric === "disk") {
        const mount = rule.subject ?? (await c.latest(serverId))?.disks[0]?.mount ?? "/";
        target = set.disk(mount);
        set.insertSeries(target, await c.diskHistory(serverId, mount, start, end, auto));
      } else if (rule.metric === "net_rx" || rule.metric === "net_tx") {
        const name = rule.subject ?? (await c.latest(serverId))?.interfaces[0]?.interface ?? "eth0";
        target = set.iface(name);
        set.insertRates(target, await c.interfaceHistory(serverId, name, start, end, auto));
        column = rule.metric === "net_rx" ? 0 : 1;
      } else if (rule.metric.startsWith("load")) {
        set.insertSeries(set.cpu, await c.history(serverId, rule.metric, start, end, auto));
      } else {
        set.insertSeries(set.cpu, await c.history(serverId, "cpu_percent", start, end, auto));
      }
      const unit =
        rule.metric === "cpu" ||
        rule.metric === "memory" ||
        rule.metric === "disk" ||
        rule.metric === "no_data"
          ? "percent"
          : rule.metric.startsWith("net")
            ? "rate"
            : "number";
      chart?.destroy();
      chart = new Chart(
        {
          title: `${ctx.names.get(serverId) ?? "server"}: ${rule.metric}${rule.subject ? ` ${rule.subject}` : ""}, ${set.resolution} resolution`,
          unit,
          series: [{ label: rule.metric, color: COLORS[0]! }],
          height: 200,
        },
        "backtest",
      );
      clear(chartBox, chart.el);
      const [xs, ...cols] = target.toPlot();
      chart.setData([xs, cols[column] ?? []]);
      chart.setWindow(start.getTime() / 1000, end.getTime() / 1000);
      chart.setMarks({
        bands: result.episodes
          .filter((e) => e.server_id === serverId)
          .map((e) => ({
            start: Date.parse(e.fired_at) / 1000,
            end: e.resolved_at ? Date.parse(e.resolved_at) / 1000 : null,
          })),
        lines:
          rule.metric === "no_data"
            ? []
            : [
                { value: rule.threshold, color: "#ef4444" },
                ...(rule.clear_threshold != null ? [{ value: rule.clear_threshold, color: "#10b981" }] : []),
              ],
      });
    }

    preview.addEventListener("click", () => void runBacktest());
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const rule = read();
      (existing ? ctx.client.updateRule(existing.id, rule) : ctx.client.createRule(rule))
        .then(() => {
          toast(existing ? "Rule saved" : "Rule created", "ok");
          close();
          void load();
        })
        .catch((e: Error) => toast(e.message, "error"));
    });
    clear(editor, form);
    setQuery({ edit: existing ? existing.id : "new" });
    f.name.focus();
  }

  void load();
  return () => chart?.destroy();
}
