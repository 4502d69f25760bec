/**
 * The fleet: every server the user can see, from one `GET /fleet` and then the one fleet socket
 * of the tab. Rows are virtualized (only the visible ones exist in the DOM, reused as the list
 * scrolls) and live updates are applied once per animation frame (FleetStore), so a thousand
 * servers stay cheap.
 */
import type { Ctx } from "../context";
import { ApiError } from "../lib/api";
import { drawSpark } from "../lib/chart";
import { clear, h, setText, toast } from "../lib/dom";
import { FleetStore, view, type FleetRow, type Severity, type SortKey } from "../lib/fleet";
import { navigate, setQuery } from "../lib/router";
import { formatAgo, formatLocal, formatPercent, formatUtc, plural } from "../lib/units";

const ROW_HEIGHT = 44;
const OVERSCAN = 8;

interface RowEls {
  root: HTMLAnchorElement;
  status: HTMLElement;
  name: HTMLElement;
  tags: HTMLElement;
  cpu: HTMLElement;
  cpuBar: HTMLElement;
  mem: HTMLElement;
  memBar: HTMLElement;
  disk: HTMLElement;
  spark: HTMLCanvasElement;
  alerts: HTMLElement;
  seen: HTMLElement;
  id: string | null;
  version: number;
}

function bar(): HTMLElement {
  return h("span", { class: "bar" }, h("span", { class: "fill" }));
}

function makeRow(): RowEls {
  const status = h("span", { class: "status" });
  const name = h("span", { class: "name" });
  const tags = h("span", { class: "tags" });
  const cpu = h("span", { class: "num" });
  const cpuBar = bar();
  const mem = h("span", { class: "num" });
  const memBar = bar();
  const disk = h("span", { class: "num" });
  const spark = h("canvas", { width: 90, height: 24, class: "spark", "aria-hidden": "true" });
  const alerts = h("span", { class: "alerts" });
  const seen = h("span", { class: "seen" });
  const root = h(
    "a",
    { class: "frow", role: "row" },
    h("span", { role: "cell", class: "c-status" }, status),
    h("span", { role: "cell", class: "c-name" }, name, tags),
    h("span", { role: "cell", class: "c-cpu" }, cpuBar, cpu),
    h("span", { role: "cell", class: "c-mem" }, memBar, mem),
    h("span", { role: "cell", class: "c-disk" }, disk),
    h("span", { role: "cell", class: "c-spark" }, spark),
    h("span", { role: "cell", class: "c-alerts" }, alerts),
    h("span", { role: "cell", class: "c-seen" }, seen),
  );
  return {
    root,
    status,
    name,
    tags,
    cpu,
    cpuBar,
    mem,
    memBar,
    disk,
    spark,
    alerts,
    seen,
    id: null,
    version: -1,
  };
}

function setBar(el: HTMLElement, value: number | null): void {
  const fill = el.firstElementChild as HTMLElement;
  const v = value === null ? 0 : Math.max(0, Math.min(100, value));
  fill.style.transform = `scaleX(${v / 100})`; // CSSOM, allowed under a strict style-src
  el.classList.toggle("hot", v >= 90);
  el.classList.toggle("warm", v >= 75 && v < 90);
}

const versions = new WeakMap<FleetRow, number>();
function bump(row: FleetRow): void {
  versions.set(row, (versions.get(row) ?? 0) + 1);
}

function fill(els: RowEls, row: FleetRow, now: number): void {
  const version = versions.get(row) ?? 0;
  const same = els.id === row.server_id && els.version === version;
  els.id = row.server_id;
  els.version = version;
  els.root.href = `/servers/${row.server_id}`;
  els.root.dataset["id"] = row.server_id;
  els.root.dataset["status"] = row.status;
  setText(els.seen, formatAgo(row.last_seen, now));
  const title = row.last_seen ? `${formatLocal(row.last_seen)} · ${formatUtc(row.last_seen)}` : "";
  if (els.seen.title !== title) els.seen.title = title;
  if (same) return;
  els.status.className = `status s-${row.status}`;
  setText(els.status, row.status);
  setText(els.name, row.name);
  setText(els.tags, row.tags.join(" "));
  setText(els.cpu, formatPercent(row.cpu_percent));
  setBar(els.cpuBar, row.cpu_percent);
  setText(els.mem, formatPercent(row.memory_percent));
  setBar(els.memBar, row.memory_percent);
  setText(
    els.disk,
    row.disk_percent === null ? "–" : `${formatPercent(row.disk_percent)} ${row.disk_mount ?? ""}`,
  );
  els.disk.classList.toggle("hot", (row.disk_percent ?? 0) >= 90);
  drawSpark(els.spark, row.spark?.cpu_percent ?? [], "#3b82f6");
  const firing = row.alerts.firing;
  els.alerts.className = `alerts${firing ? ` sev-${row.alerts.max_severity ?? "warning"}` : ""}`;
  setText(els.alerts, firing ? `${firing} firing` : "");
}

export function fleetPage(ctx: Ctx, host: HTMLElement): () => void {
  const params = new URLSearchParams(location.search);
  let query = params.get("q") ?? "";
  let sort = (params.get("sort") as SortKey | null) ?? "status";
  let descending = params.get("desc") === "1";
  const store = new FleetStore();
  let ordered: FleetRow[] = [];
  const pool: RowEls[] = [];

  const filter = h("input", {
    type: "search",
    placeholder: "Filter: name, tag:prod, status:offline   ( / )",
    "data-filter": "",
    "aria-label": "Filter servers",
    value: query,
  });
  const summary = h("div", { class: "summary", "aria-live": "polite" });
  const headerCell = (key: SortKey | null, label: string, cls: string): HTMLElement =>
    key
      ? h(
          "button",
          { role: "columnheader", class: `sort ${cls}`, "data-sort": key, onclick: () => setSort(key) },
          label,
        )
      : h("span", { role: "columnheader", class: cls }, label);
  const header = h(
    "div",
    { class: "fhead", role: "row" },
    headerCell("status", "Status", "c-status"),
    headerCell("name", "Name", "c-name"),
    headerCell("cpu", "CPU", "c-cpu"),
    headerCell("memory", "Memory", "c-mem"),
    headerCell("disk", "Fullest disk", "c-disk"),
    headerCell(null, "CPU, 15 min", "c-spark"),
    headerCell("alerts", "Alerts", "c-alerts"),
    headerCell("last_seen", "Last seen", "c-seen"),
  );
  const spacer = h("div", { class: "fspacer" });
  const viewport = h("div", { class: "fviewport", role: "rowgroup" }, spacer);
  const list = h("div", { class: "fleet", role: "table", "aria-label": "Servers" }, header, viewport);
  const message = h("div", { class: "muted" });
  const addButton = h("button", { class: "primary", onclick: () => addServer(ctx) }, "Add server");
  clear(
    host,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Fleet"),
      summary,
      h("span", { class: "spacer" }),
      addButton,
    ),
    h("div", { class: "toolbar" }, filter),
    message,
    list,
  );

  function setSort(key: SortKey): void {
    if (sort === key) descending = !descending;
    else {
      sort = key;
      descending = key === "cpu" || key === "memory" || key === "disk" || key === "alerts";
    }
    setQuery({ sort, desc: descending ? "1" : null });
    reorder();
  }

  function reorder(): void {
    ordered = view(store.rows.values(), query, sort, descending);
    for (const b of header.querySelectorAll<HTMLButtonElement>("button.sort")) {
      const active = b.dataset["sort"] === sort;
      b.classList.toggle("active", active);
      b.setAttribute("aria-sort", active ? (descending ? "descending" : "ascending") : "none");
    }
    spacer.style.height = `${ordered.length * ROW_HEIGHT}px`;
    renderSummary();
    paint();
  }

  function renderSummary(): void {
    const counts = { online: 0, offline: 0, stale: 0, unknown: 0 };
    let firing = 0;
    for (const r of store.rows.values()) {
      counts[r.status]++;
      firing += r.alerts.firing;
    }
    setText(
      summary,
      `${plural(store.rows.size, "server")} · ${counts.online} online · ${counts.offline} offline · ${counts.stale} stale` +
        (firing ? ` · ${plural(firing, "alert")} firing` : "") +
        (ordered.length !== store.rows.size ? ` · ${ordered.length} shown` : ""),
    );
  }

  function paint(): void {
    const now = Date.now();
    const top = viewport.scrollTop;
    const visible = Math.ceil((viewport.clientHeight || 600) / ROW_HEIGHT);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(ordered.length, first + visible + 2 * OVERSCAN);
    const needed = last - first;
    while (pool.length < needed) {
      const els = makeRow();
      pool.push(els);
      viewport.appendChild(els.root);
    }
    for (let i = 0; i < pool.length; i++) {
      const els = pool[i]!;
      const row = ordered[first + i];
      if (i >= needed || !row) {
        els.root.hidden = true;
        continue;
      }
      els.root.hidden = false;
      els.root.style.transform = `translateY(${(first + i) * ROW_HEIGHT}px)`;
      fill(els, row, now);
    }
  }

  store.onFlush = (changed, structural) => {
    for (const id of changed) {
      const row = store.rows.get(id);
      if (row) bump(row);
    }
    if (structural && changed.size !== store.rows.size) void load();
    reorder();
  };

  async function load(): Promise<void> {
    try {
      const answer = await ctx.client.fleet();
      for (const s of answer.servers) ctx.names.set(s.server_id, s.name);
      message.textContent = answer.truncated
        ? `Showing the first ${plural(answer.servers.length, "server")} by name: the API answers at most that many (its fleet_max_servers setting).`
        : answer.servers.length
          ? ""
          : "No servers yet. Add one, then create an API key for its agent.";
      store.load(answer.servers);
      performance.mark("fleet:rendered"); // the rows are in the DOM (bench/dashboard.py)
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) await loadServers();
      else message.textContent = `Could not load the fleet: ${(e as Error).message}`;
    }
  }

  /** An API without the fleet summary: the server list alone (status and last seen, no metrics). */
  async function loadServers(): Promise<void> {
    try {
      const servers = await ctx.client.servers();
      message.textContent = "This API has no fleet summary (GET /api/v1/fleet): status and last seen only.";
      store.load(
        servers.map((s) => ({
          server_id: s.id,
          name: s.name,
          tags: s.tags ?? [],
          role: s.role,
          status: s.status,
          last_seen: s.last_seen,
          sample_time: null,
          cpu_percent: null,
          memory_percent: null,
          disk_percent: null,
          disk_mount: null,
          spark: null,
          alerts: { firing: 0, max_severity: null },
        })),
      );
    } catch (e) {
      message.textContent = `Could not load the fleet: ${(e as Error).message}`;
    }
  }

  filter.addEventListener("input", () => {
    query = filter.value;
    setQuery({ q: query || null });
    viewport.scrollTop = 0;
    reorder();
  });
  filter.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ordered[0]) navigate(`/servers/${ordered[0].server_id}`);
  });
  let scrollPending = false;
  viewport.addEventListener("scroll", () => {
    if (scrollPending) return;
    scrollPending = true;
    requestAnimationFrame(() => {
      scrollPending = false;
      paint();
    });
  });
  const off = ctx.onFleet((frame) => {
    if (frame.type === "fleet_update") store.update(frame["data"] as FleetRow[]);
    else if (frame.type === "fleet_changed") void load();
    else if (frame.type === "alert") {
      const d = frame["data"] as { server_id: string; state: string; severity: Severity };
      store.alertCounted(d.server_id, d.state, d.severity);
    }
  });
  const ticker = setInterval(paint, 5000); // "12 s ago" keeps counting
  // While the fleet socket is down (or the API has none), the summary is refetched now and then.
  const poll = setInterval(() => {
    if (!ctx.fleetLive && !document.hidden) void load();
  }, 10_000);
  window.addEventListener("resize", paint);
  void load();
  return () => {
    off();
    clearInterval(ticker);
    clearInterval(poll);
    window.removeEventListener("resize", paint);
  };
}

function addServer(ctx: Ctx): void {
  const name = h("input", { name: "name", required: true, maxlength: 200 });
  const hostInput = h("input", { name: "host", placeholder: "optional" });
  const tags = h("input", { name: "tags", placeholder: "prod, eu (optional)" });
  const error = h("p", { class: "error" });
  const dialog = h(
    "dialog",
    { class: "form-dialog" },
    h(
      "form",
      { method: "dialog" },
      h("h2", null, "Add a server"),
      h("label", null, h("span", null, "Name"), name),
      h("label", null, h("span", null, "Host"), hostInput),
      h("label", null, h("span", null, "Tags"), tags),
      error,
      h(
        "div",
        { class: "row" },
        h("button", { value: "cancel", formnovalidate: true }, "Cancel"),
        h("button", { value: "ok", class: "primary", id: "add-server-submit" }, "Add"),
      ),
    ),
  );
  const form = dialog.querySelector("form")!;
  form.addEventListener("submit", (ev) => {
    if ((ev.submitter as HTMLButtonElement | null)?.value !== "ok") return;
    ev.preventDefault();
    const tagList = tags.value
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    ctx.client
      .createServer({
        name: name.value.trim(),
        host: hostInput.value.trim() || null,
        ...(tagList.length ? { tags: tagList } : {}),
      })
      .then((server) => {
        dialog.close();
        ctx.names.set(server.id, server.name);
        toast(`Server ${server.name} added: create a key for its agent`, "ok");
        navigate(`/servers/${server.id}?tab=keys`);
      })
      .catch((e: Error) => (error.textContent = e.message));
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  name.focus();
}
