/**
 * Time-series charts on uPlot: cursors synced across a page, drag to zoom and double click to
 * reset (the page owns the zoom, so it can keep it in the URL and apply it to every chart),
 * gaps as gaps (nulls break the line, see series.ts), local time on the axis and in the legend
 * with UTC under the legend, units scaled (%, B/s..GiB/s).
 */
import uPlot from "uplot";
import { h } from "./dom";
import { formatBytes, formatLocal, formatPercent, formatRate, formatUtc } from "./units";
import type { Value } from "./series";
import { BINARY_INCRS, bytesRange, isolatedPoints } from "./scale";

export type Unit = "percent" | "rate" | "bytes" | "number";

export interface ChartSpec {
  title: string;
  unit: Unit;
  series: { label: string; color: string }[];
  height?: number;
}

export interface Marks {
  /** Shaded spans [start, end] in unix seconds (end null: still open). */
  bands?: { start: number; end: number | null }[];
  /** Horizontal lines at these values. */
  lines?: { value: number; color: string }[];
}

export const COLORS = ["#3b82f6", "#f59e0b", "#10b981", "#a855f7", "#ef4444", "#06b6d4"];

const theme = { axis: "#888", grid: "rgba(128,128,128,0.18)" };
const charts = new Set<Chart>();
const dark = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
function readTheme(): void {
  theme.axis = dark?.matches ? "#9aa4b2" : "#5b6472";
}
readTheme();
dark?.addEventListener("change", () => {
  readTheme();
  for (const c of charts) c.redraw();
});

function formatter(unit: Unit): (v: number | null | undefined) => string {
  switch (unit) {
    case "percent":
      return (v) => formatPercent(v);
    case "rate":
      return (v) => formatRate(v);
    case "bytes":
      return (v) => formatBytes(v);
    default:
      return (v) => (v === null || v === undefined ? "–" : v.toFixed(2));
  }
}

function axisValues(unit: Unit): (u: uPlot, splits: number[]) => string[] {
  if (unit === "percent") return (_u, splits) => splits.map((v) => `${v}%`);
  if (unit === "rate" || unit === "bytes") {
    const f = unit === "rate" ? formatRate : formatBytes;
    return (_u, splits) => splits.map((v) => f(v).replace(".00", ""));
  }
  return (_u, splits) => splits.map((v) => String(v));
}

export interface ChartEvents {
  onZoom?(range: { min: number; max: number } | null): void;
}

export class Chart {
  readonly el: HTMLElement;
  private readonly plot: uPlot;
  private readonly utc: HTMLElement;
  private marks: Marks = {};
  private window: { min: number; max: number } | null = null;
  private readonly resize: ResizeObserver | null = null;
  private empty: HTMLElement;

  constructor(
    readonly spec: ChartSpec,
    syncKey: string,
    events: ChartEvents = {},
  ) {
    const body = h("div", { class: "chart-body" });
    this.utc = h("div", { class: "chart-utc" });
    this.empty = h("div", { class: "chart-empty" }, "No data in this range");
    this.el = h("figure", { class: "chart" }, h("figcaption", null, spec.title), body, this.empty, this.utc);
    const fmt = formatter(spec.unit);
    const opts: uPlot.Options = {
      width: 600,
      height: spec.height ?? 180,
      cursor: {
        sync: { key: syncKey, setSeries: false },
        drag: { x: true, y: false, setScale: false },
      },
      scales: {
        x: {
          time: true,
          range: (_u, min, max) => (this.window ? [this.window.min, this.window.max] : [min, max]),
        },
        y: {
          range:
            spec.unit === "percent"
              ? [0, 100]
              : spec.unit === "rate" || spec.unit === "bytes"
                ? (_u, _min, max) => bytesRange(max)
                : (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1],
        },
      },
      axes: [
        { stroke: () => theme.axis, grid: { stroke: () => theme.grid, width: 1 }, ticks: { show: false } },
        {
          stroke: () => theme.axis,
          grid: { stroke: () => theme.grid, width: 1 },
          ticks: { show: false },
          values: axisValues(spec.unit),
          ...(spec.unit === "rate" || spec.unit === "bytes" ? { incrs: BINARY_INCRS } : {}),
          size: spec.unit === "percent" ? 44 : 76,
        },
      ],
      series: [
        { value: (_u, v) => (v === null ? "–" : formatLocal(v * 1000)) },
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          fill: spec.series.length === 1 ? `${s.color}22` : undefined,
          spanGaps: false,
          points: {
            show: false,
            size: 5,
            fill: s.color,
            filter: (u: uPlot, si: number) => isolatedPoints(u.data[si] ?? []),
          },
          value: (_u: uPlot, v: number | null) => fmt(v),
        })),
      ],
      legend: { live: true },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width > 2) {
              const min = u.posToVal(u.select.left, "x");
              const max = u.posToVal(u.select.left + u.select.width, "x");
              events.onZoom?.({ min, max });
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        setCursor: [
          (u) => {
            const i = u.cursor.idx;
            const t = i === null || i === undefined ? null : u.data[0][i];
            this.utc.textContent = t === null || t === undefined ? "" : formatUtc(t * 1000);
          },
        ],
        draw: [(u) => this.drawMarks(u)],
      },
    };
    this.plot = new uPlot(opts, [[], ...spec.series.map(() => [])] as uPlot.AlignedData, body);
    this.plot.over.addEventListener("dblclick", () => events.onZoom?.(null));
    if (typeof ResizeObserver === "function") {
      this.resize = new ResizeObserver(() => this.fit());
      this.resize.observe(this.el);
    }
    charts.add(this);
  }

  private fit(): void {
    const width = Math.max(200, Math.floor(this.el.clientWidth - 2));
    if (Math.abs(width - this.plot.width) > 1) this.plot.setSize({ width, height: this.plot.height });
  }

  /** Replaces the data; the x window stays what `setWindow` said. */
  setData(data: [number[], ...Value[][]]): void {
    this.plot.setData(data, true);
    let points = 0;
    for (const v of data[1] ?? []) if (v !== null) points++;
    this.empty.hidden = points > 0;
    this.el.dataset["points"] = String(points); // what a test or a benchmark can read
  }

  /** The visible x range in unix seconds (the live window, or the zoom). */
  setWindow(min: number, max: number): void {
    this.window = { min, max };
    this.plot.setScale("x", { min, max });
  }

  setMarks(marks: Marks): void {
    this.marks = marks;
    this.plot.redraw(false);
  }

  redraw(): void {
    this.plot.redraw(false, true);
  }

  private drawMarks(u: uPlot): void {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    for (const band of this.marks.bands ?? []) {
      const x0 = u.valToPos(band.start, "x", true);
      const x1 = band.end === null ? left + width : u.valToPos(band.end, "x", true);
      ctx.fillStyle = "rgba(239, 68, 68, 0.18)";
      ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
    }
    for (const line of this.marks.lines ?? []) {
      const y = u.valToPos(line.value, "y", true);
      ctx.strokeStyle = line.color;
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
    }
    ctx.restore();
  }

  destroy(): void {
    this.resize?.disconnect();
    charts.delete(this);
    this.plot.destroy();
    this.el.remove();
  }
}

/** A small canvas sparkline, drawn by hand: a thousand of them must stay cheap. */
export function drawSpark(canvas: HTMLCanvasElement, values: (number | null)[], color: string): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const w = canvas.width;
  const hgt = canvas.height;
  ctx.clearRect(0, 0, w, hgt);
  if (values.length < 2) return;
  const step = w / (values.length - 1);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) {
      pen = false; // a gap stays a gap
      return;
    }
    const x = i * step;
    const y = hgt - 1 - (Math.max(0, Math.min(100, v)) / 100) * (hgt - 2);
    if (pen) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    pen = true;
  });
  ctx.stroke();
}
