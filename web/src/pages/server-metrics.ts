/**
 * The metrics tab: CPU, memory, each disk and each interface's rates. The chosen range's history
 * comes from the REST history API (the server picks raw, 1m or 1h for the range), live frames
 * come from the page's metrics socket; both insert into the same series. Drag zooms every chart
 * (a finer history is fetched when the zoomed span allows a finer resolution), double click
 * resets; range and zoom are in the URL.
 */
import { ApiError, type RateSeries, type Series } from "../lib/api";
import { Chart, COLORS } from "../lib/chart";
import { clear, h, toast } from "../lib/dom";
import { isVirtual, RANGES, rangeSeconds, SeriesSet } from "../lib/metrics";
import { setQuery } from "../lib/router";
import type { TimeSeries } from "../lib/series";
import type { ServerLive } from "./server";

const RAW_MAX_SECONDS = 6 * 3600;

/** A history call at `auto`; when the answer would hold too many points, the next coarser one. */
async function coarsening<T>(call: (resolution: string) => Promise<T>): Promise<T> {
  for (const resolution of ["auto", "1m", "1h"]) {
    try {
      return await call(resolution);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 422 || resolution === "1h") throw e;
    }
  }
  throw new Error("unreachable");
}

export async function loadHistory(
  live: ServerLive,
  target: SeriesSet,
  start: Date,
  end: Date,
): Promise<void> {
  const c = live.ctx.client;
  const id = live.server.id;
  const jobs: Promise<void>[] = [
    coarsening((r) => c.history(id, "cpu_percent", start, end, r)).then((s: Series) =>
      target.insertSeries(target.cpu, s),
    ),
    coarsening((r) => c.history(id, "memory_percent", start, end, r)).then((s: Series) =>
      target.insertSeries(target.memory, s),
    ),
  ];
  for (const mount of target.disks.keys())
    jobs.push(
      coarsening((r) => c.diskHistory(id, mount, start, end, r)).then((s) =>
        target.insertSeries(target.disk(mount), s),
      ),
    );
  for (const name of target.interfaces.keys())
    jobs.push(
      coarsening((r) => c.interfaceHistory(id, name, start, end, r)).then((s: RateSeries) =>
        target.insertRates(target.iface(name), s),
      ),
    );
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

export function metricsTab(live: ServerLive, host: HTMLElement): () => void {
  const params = new URLSearchParams(location.search);
  let range = rangeSeconds(params.get("range"));
  let zoom: { min: number; max: number } | null =
    params.get("from") && params.get("to")
      ? { min: Number(params.get("from")), max: Number(params.get("to")) }
      : null;
  /** A finer history of the zoomed span, shown instead of the main series while zoomed. */
  let zoomSet: SeriesSet | null = null;
  let showVirtual = params.get("virtual") === "1";
  const charts = new Map<string, Chart>();
  const syncKey = `server-${live.server.id}`;
  const grid = h("div", { class: "charts" });
  const resolution = h("span", { class: "muted", id: "resolution" });
  const virtualToggle = h("input", { type: "checkbox", checked: showVirtual, id: "show-virtual" });
  const picker = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "Time range" },
    ...RANGES.map(([name, seconds]) =>
      h(
        "button",
        {
          class: seconds === range ? "active" : "",
          "data-range": name,
          "aria-pressed": seconds === range ? "true" : "false",
          onclick: () => setRange(name, seconds),
        },
        name,
      ),
    ),
  );
  const resetZoom = h(
    "button",
    { class: "ghost small", hidden: !zoom, onclick: () => applyZoom(null) },
    "Reset zoom",
  );
  clear(
    host,
    h(
      "div",
      { class: "toolbar" },
      picker,
      resetZoom,
      resolution,
      h("span", { class: "spacer" }),
      h("label", { class: "check" }, virtualToggle, " loopback and virtual interfaces"),
    ),
    grid,
    h(
      "p",
      { class: "hint muted" },
      "Drag across a chart to zoom, double-click to reset. Times are local; hover shows UTC.",
    ),
  );

  function chart(key: string, make: () => Chart): Chart {
    let c = charts.get(key);
    if (!c) {
      c = make();
      charts.set(key, c);
      grid.append(c.el);
    }
    return c;
  }

  const onZoom = (r: { min: number; max: number } | null) => applyZoom(r);

  function ensureCharts(set: SeriesSet): void {
    chart(
      "cpu",
      () =>
        new Chart({ title: "CPU", unit: "percent", series: [{ label: "CPU", color: COLORS[0]! }] }, syncKey, {
          onZoom,
        }),
    );
    chart(
      "memory",
      () =>
        new Chart(
          { title: "Memory", unit: "percent", series: [{ label: "Memory", color: COLORS[1]! }] },
          syncKey,
          { onZoom },
        ),
    );
    for (const mount of [...set.disks.keys()].sort())
      chart(
        `disk:${mount}`,
        () =>
          new Chart(
            { title: `Disk ${mount}`, unit: "percent", series: [{ label: "Used", color: COLORS[2]! }] },
            syncKey,
            { onZoom },
          ),
      );
    for (const name of [...set.interfaces.keys()].sort()) {
      if (isVirtual(name) && !showVirtual) continue;
      chart(
        `net:${name}`,
        () =>
          new Chart(
            {
              title: `Network ${name}`,
              unit: "rate",
              series: [
                { label: "Received", color: COLORS[3]! },
                { label: "Sent", color: COLORS[0]! },
              ],
            },
            syncKey,
            { onZoom },
          ),
      );
    }
    for (const [key, c] of charts)
      if (key.startsWith("net:") && isVirtual(key.slice(4)) && !showVirtual) {
        c.destroy();
        charts.delete(key);
      }
  }

  function seriesFor(set: SeriesSet, key: string): TimeSeries | undefined {
    if (key === "cpu") return set.cpu;
    if (key === "memory") return set.memory;
    if (key.startsWith("disk:")) return set.disks.get(key.slice(5));
    if (key.startsWith("net:")) return set.interfaces.get(key.slice(4));
    return undefined;
  }

  let firstDraw = true;
  let historyMarked = false;
  let historyLoaded = false;
  function render(): void {
    const set = zoomSet ?? live.series;
    ensureCharts(set);
    const now = Date.now() / 1000;
    const win = zoom ?? { min: now - range, max: now };
    for (const [key, c] of charts) {
      const s = seriesFor(set, key);
      c.setData(s ? s.toPlot() : [[], []]);
      c.setWindow(win.min, win.max);
    }
    resolution.textContent = `resolution ${set.resolution}${zoom ? " (zoomed)" : ""}`;
    if (firstDraw && live.series.cpu.length > 0) {
      firstDraw = false;
      performance.mark("server:first-chart"); // the socket's recent minutes, or the history
    }
    if (historyLoaded && !historyMarked) {
      historyMarked = true;
      performance.mark("server:history-chart"); // the whole range drawn (bench/dashboard.py)
    }
  }

  let pending = false;
  function schedule(): void {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  }

  let loadSeq = 0;
  async function load(): Promise<void> {
    const seq = ++loadSeq;
    const end = new Date(Date.now() + 5_000);
    const start = new Date(end.getTime() - range * 1000 - 5_000);
    try {
      if (live.series.disks.size === 0 && live.series.interfaces.size === 0)
        live.series.know(await live.ctx.client.latest(live.server.id));
      await loadHistory(live, live.series, start, end);
      if (seq === loadSeq) historyLoaded = true;
    } catch (e) {
      if (seq === loadSeq) toast(`History: ${(e as Error).message}`, "error");
    }
    if (seq === loadSeq) schedule();
  }

  async function loadZoom(r: { min: number; max: number }): Promise<void> {
    const span = r.max - r.min;
    // Only worth it when the zoomed span can be served finer than the range was.
    const finer =
      (range > RAW_MAX_SECONDS && span <= RAW_MAX_SECONDS) || (range > 7 * 86400 && span <= 7 * 86400);
    if (!finer) {
      zoomSet = null;
      return;
    }
    const set = new SeriesSet();
    for (const m of live.series.disks.keys()) set.disk(m);
    for (const n of live.series.interfaces.keys()) set.iface(n);
    try {
      await loadHistory(live, set, new Date(r.min * 1000), new Date(r.max * 1000));
      if (zoom && zoom.min === r.min) zoomSet = set;
    } catch (e) {
      toast(`History: ${(e as Error).message}`, "error");
    }
  }

  function applyZoom(r: { min: number; max: number } | null): void {
    zoom = r;
    zoomSet = null;
    resetZoom.hidden = !r;
    setQuery({ from: r ? String(Math.round(r.min)) : null, to: r ? String(Math.round(r.max)) : null }, true);
    schedule();
    if (r) void loadZoom(r).then(schedule);
  }

  function setRange(name: string, seconds: number): void {
    range = seconds;
    for (const b of picker.querySelectorAll<HTMLButtonElement>("button")) {
      b.classList.toggle("active", b.dataset["range"] === name);
      b.setAttribute("aria-pressed", b.dataset["range"] === name ? "true" : "false");
    }
    setQuery({ range: name, from: null, to: null }, true);
    zoom = null;
    zoomSet = null;
    resetZoom.hidden = true;
    // Another range: another resolution. The old points go; the new history comes in.
    live.series.cpu.clear();
    live.series.memory.clear();
    for (const s of live.series.disks.values()) s.clear();
    for (const s of live.series.interfaces.values()) s.clear();
    void load();
  }

  virtualToggle.addEventListener("change", () => {
    showVirtual = virtualToggle.checked;
    setQuery({ virtual: showVirtual ? "1" : null });
    schedule();
  });

  const off = live.listen((kind) => {
    if (kind === "metrics") {
      if (!zoom) live.series.trimBefore(Date.now() / 1000 - range - 60);
      schedule();
    } else if (kind === "history_lost") {
      void load(); // the span the socket could not replay comes from REST
    }
  });
  // The live window slides even between samples.
  const ticker = setInterval(() => {
    if (!zoom) schedule();
  }, 5000);
  if (zoom) void loadZoom(zoom).then(schedule);
  void load();
  schedule();
  return () => {
    off();
    clearInterval(ticker);
    for (const c of charts.values()) c.destroy();
    charts.clear();
  };
}
