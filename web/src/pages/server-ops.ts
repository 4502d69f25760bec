/** Processes, containers (with actions for operators) and the commands console. */
import { ApiError, type CommandHistory, type Container, type Process } from "../lib/api";
import { clear, confirmDialog, dataTable, h, timeEl, toast } from "../lib/dom";
import type { MetricsData } from "../lib/metrics";
import { formatBytes, formatLocal, formatPercent } from "../lib/units";
import type { ServerLive } from "./server";

// --- processes ---------------------------------------------------------------------------------

function processTable(title: string, rows: Process[]): HTMLElement {
  return h(
    "div",
    { class: "card" },
    h("h3", null, title),
    rows.length === 0
      ? h("p", { class: "muted" }, "None reported.")
      : dataTable(
          [
            h("th", null, "PID"),
            h("th", null, "Name"),
            h("th", null, "User"),
            h("th", { class: "num" }, "CPU"),
            h("th", { class: "num" }, "Memory"),
            h("th", { class: "num" }, "RSS"),
          ],
          [
            ...rows.map((p) =>
              h(
                "tr",
                null,
                h("td", { class: "num" }, String(p.pid)),
                h("td", null, p.name),
                h("td", null, p.user ?? "–"),
                h("td", { class: "num" }, formatPercent(p.cpu_percent)),
                h("td", { class: "num" }, formatPercent(p.memory_percent)),
                h("td", { class: "num" }, formatBytes(p.memory_rss_bytes)),
              ),
            ),
          ],
        ),
  );
}

export function processesTab(live: ServerLive, host: HTMLElement): () => void {
  const when = h("p", { class: "muted" });
  const tables = h("div", { class: "two" });
  clear(host, when, tables);
  let shownAt = "";

  function show(timestamp: string | null, processes: Process[]): void {
    if (timestamp && timestamp <= shownAt) return;
    shownAt = timestamp ?? shownAt;
    clear(
      when,
      timestamp
        ? ["From the sample of ", timeEl(timestamp, formatLocal(timestamp)), " (live)."]
        : "No sample with processes yet.",
    );
    const byCpu = [...processes].sort((a, b) => (b.cpu_percent ?? -1) - (a.cpu_percent ?? -1));
    const byMem = [...processes].sort(
      (a, b) =>
        (b.memory_rss_bytes ?? b.memory_percent ?? -1) - (a.memory_rss_bytes ?? a.memory_percent ?? -1),
    );
    clear(
      tables,
      processTable("Top by CPU", byCpu.slice(0, 15)),
      processTable("Top by memory", byMem.slice(0, 15)),
    );
  }

  live.ctx.client
    .processes(live.server.id)
    .then((answer) => show(answer.timestamp, answer.processes))
    .catch((e: Error) => {
      if (!shownAt)
        when.textContent =
          e instanceof ApiError && e.status === 404 ? "This API does not serve processes." : e.message;
    });
  if (live.latest?.processes) show(live.latest.timestamp, live.latest.processes);
  return live.listen((kind, data) => {
    const d = data as MetricsData;
    if (kind === "metrics" && d.processes) show(d.timestamp, d.processes);
  });
}

// --- containers --------------------------------------------------------------------------------

export function containersTab(live: ServerLive, host: HTMLElement): void {
  const list = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const logs = h("div");
  clear(host, list, logs);

  async function act(c: Container, action: "start" | "stop" | "restart"): Promise<void> {
    if (
      !(await confirmDialog(
        `${action[0]!.toUpperCase()}${action.slice(1)} container ${c.name} on ${live.server.name}?`,
        action,
      ))
    )
      return;
    try {
      const answer = await live.ctx.client.containerAction(live.server.id, c.id, action);
      toast(
        answer.status === "success"
          ? `${c.name}: ${action} done`
          : `${c.name}: ${answer.message ?? "failed"}`,
        answer.status === "success" ? "ok" : "error",
      );
      void load();
    } catch (e) {
      toast((e as Error).message, "error");
    }
  }

  async function showLogs(c: Container): Promise<void> {
    clear(logs, h("p", { class: "muted" }, `Fetching the logs of ${c.name}…`));
    try {
      const answer = await live.ctx.client.containerLogs(live.server.id, c.id);
      clear(
        logs,
        h("h3", null, `Logs of ${c.name}`),
        h("pre", { class: "console" }, answer.logs.join("\n") || "(empty)"),
      );
    } catch (e) {
      clear(logs, h("p", { class: "error" }, (e as Error).message));
    }
  }

  async function load(): Promise<void> {
    try {
      const answer = await live.ctx.client.containers(live.server.id);
      const operate = live.canOperate && live.server.commands_enabled;
      clear(
        list,
        h("p", { class: "muted" }, "From the sample of ", timeEl(answer.time, formatLocal(answer.time)), "."),
        live.canOperate && !live.server.commands_enabled
          ? h(
              "p",
              { class: "muted" },
              "Container actions are off: an owner enables commands in Settings → Commands.",
            )
          : null,
        dataTable(
          [
            h("th", null, "Name"),
            h("th", null, "Image"),
            h("th", null, "State"),
            h("th", { class: "num" }, "CPU"),
            h("th", { class: "num" }, "Memory"),
            h("th", null, ""),
          ],
          [
            ...answer.containers.map((c) =>
              h(
                "tr",
                null,
                h("td", null, c.name),
                h("td", null, c.image ?? "–"),
                h(
                  "td",
                  null,
                  h("span", { class: `pill state-${c.state ?? "unknown"}` }, c.state ?? "–"),
                  " ",
                  c.status ?? "",
                ),
                h("td", { class: "num" }, formatPercent(c.cpu_percent)),
                h("td", { class: "num" }, formatBytes(c.memory_bytes)),
                h(
                  "td",
                  { class: "actions" },
                  operate
                    ? [
                        c.state !== "running"
                          ? h("button", { class: "small", onclick: () => void act(c, "start") }, "Start")
                          : null,
                        c.state === "running"
                          ? h("button", { class: "small", onclick: () => void act(c, "stop") }, "Stop")
                          : null,
                        h("button", { class: "small", onclick: () => void act(c, "restart") }, "Restart"),
                        h("button", { class: "small ghost", onclick: () => void showLogs(c) }, "Logs"),
                      ]
                    : null,
                ),
              ),
            ),
          ],
        ),
      );
    } catch (e) {
      clear(
        list,
        h(
          "p",
          { class: "muted" },
          e instanceof ApiError && e.status === 404
            ? "This server's agent has reported no containers."
            : (e as Error).message,
        ),
      );
    }
  }
  void load();
}

// --- commands ----------------------------------------------------------------------------------

export function commandsTab(live: ServerLive, host: HTMLElement): void {
  const s = live.server;
  const output = h("pre", { class: "console", "aria-live": "polite", id: "console-output" });
  const input = h("input", {
    name: "command",
    placeholder: "a command the allowlist allows, e.g. uptime",
    autocomplete: "off",
    "aria-label": "Command",
  });
  const run = h("button", { class: "primary", type: "submit" }, "Run");
  const form = h("form", { class: "row console-form" }, h("span", { class: "prompt" }, "$"), input, run);
  const historyBox = h("div");
  const allowBox = h("div");

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const command = input.value.trim();
    if (!command) return;
    run.disabled = true;
    output.append(`$ ${command}\n`);
    live.ctx.client
      .runCommand(s.id, command)
      .then((r) => {
        output.append(
          r.output ?? "",
          r.error ? `\n${r.error}` : "",
          `\n[exit ${r.exit_code ?? "?"}, ${r.duration_ms ?? "?"} ms]\n`,
        );
        input.value = "";
      })
      .catch((e: Error) => output.append(`error: ${e.message}\n`))
      .finally(() => {
        run.disabled = false;
        output.scrollTop = output.scrollHeight;
        void loadHistory();
        input.focus();
      });
  });

  async function loadHistory(): Promise<void> {
    try {
      const items: CommandHistory[] = await live.ctx.client.commandHistory(s.id);
      clear(
        historyBox,
        h("h3", null, "History"),
        items.length === 0
          ? h("p", { class: "muted" }, "No commands yet.")
          : dataTable(
              [h("th", null, "When"), h("th", null, "What"), h("th", null, "Result")],
              [
                ...items
                  .slice(0, 50)
                  .map((c) =>
                    h(
                      "tr",
                      null,
                      h("td", null, timeEl(c.requested_at, formatLocal(c.requested_at))),
                      h("td", null, h("code", null, c.command ?? `${c.action} ${c.container_id ?? ""}`)),
                      h(
                        "td",
                        null,
                        c.success === null
                          ? "pending"
                          : c.success
                            ? `ok (exit ${c.exit_code ?? 0})`
                            : `failed${c.error ? `: ${c.error}` : ""}`,
                      ),
                    ),
                  ),
              ],
            ),
      );
    } catch (e) {
      clear(historyBox, h("p", { class: "error" }, (e as Error).message));
    }
  }

  function renderAllowlist(): void {
    if (!live.isOwner) return;
    const enabled = h("input", { type: "checkbox", checked: s.commands_enabled, id: "commands-enabled" });
    const list = h("textarea", {
      rows: 4,
      id: "allowlist",
      placeholder: "one regular expression per line; each must match a whole command. Empty: any command.",
    });
    list.value = s.command_allowlist.join("\n");
    const save = h("button", { class: "primary", type: "submit" }, "Save");
    const f = h(
      "form",
      { class: "card" },
      h("h3", null, "Remote commands (owners)"),
      h("label", { class: "check" }, enabled, " Commands enabled on this server (every command is audited)"),
      h("label", null, h("span", null, "Allowlist"), list),
      save,
    );
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const patterns = list.value
        .split("\n")
        .map((x) => x.trim())
        .filter(Boolean);
      live.ctx.client
        .setCommands(s.id, enabled.checked, patterns)
        .then((updated) => {
          live.server = {
            ...live.server,
            commands_enabled: updated.commands_enabled,
            command_allowlist: updated.command_allowlist,
          };
          toast("Command settings saved", "ok");
          commandsTab(live, host);
        })
        .catch((e: Error) => toast(e.message, "error"));
    });
    clear(allowBox, f);
  }

  clear(
    host,
    s.commands_enabled
      ? h("div", { class: "card" }, h("h3", null, "Console"), output, form)
      : h(
          "p",
          { class: "muted" },
          "Commands are off on this server." +
            (live.isOwner ? " Enable them below." : " An owner can enable them."),
        ),
    allowBox,
    historyBox,
  );
  renderAllowlist();
  void loadHistory();
}
