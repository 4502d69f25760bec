/**
 * A chart's data: points kept in time order whatever order they arrive in (history from REST,
 * history and live frames from the socket, a replayed backlog after an agent's outage), one
 * point per timestamp, and gaps drawn as gaps.
 *
 * A gap is where two neighbouring points are further apart than `GAP_FACTOR` times the width
 * of a point (its bucket: 60 s at 1m, 3600 s at 1h; for raw samples the series' typical sample
 * interval). There a null is inserted, and uPlot breaks the line instead of drawing it across
 * the outage.
 */
export const GAP_FACTOR = 2.5;

export type Value = number | null;

export class TimeSeries {
  /** Unix seconds, strictly increasing. */
  readonly xs: number[] = [];
  /** One column per series (e.g. received and sent), each as long as `xs`. */
  readonly ys: Value[][];
  /** Each point's width in seconds; 0 for a raw sample. */
  readonly widths: number[] = [];

  constructor(readonly columns: number) {
    this.ys = Array.from({ length: columns }, () => []);
  }

  get length(): number {
    return this.xs.length;
  }

  get last(): number | undefined {
    return this.xs[this.xs.length - 1];
  }

  /** Insert or replace the point at `t`. Appending (the live case) is O(1). */
  insert(t: number, values: Value[], width = 0): void {
    const xs = this.xs;
    const n = xs.length;
    if (n === 0 || t > xs[n - 1]!) {
      xs.push(t);
      this.widths.push(width);
      for (let c = 0; c < this.columns; c++) this.ys[c]!.push(values[c] ?? null);
      return;
    }
    const i = lowerBound(xs, t);
    if (xs[i] === t) {
      // The same instant twice (history and live overlap): a raw sample wins over a bucket.
      if (width === 0 || this.widths[i] !== 0) {
        this.widths[i] = width;
        for (let c = 0; c < this.columns; c++) this.ys[c]![i] = values[c] ?? null;
      }
      return;
    }
    xs.splice(i, 0, t);
    this.widths.splice(i, 0, width);
    for (let c = 0; c < this.columns; c++) this.ys[c]!.splice(i, 0, values[c] ?? null);
  }

  /** Drop points older than `t` (seconds). */
  trimBefore(t: number): void {
    const i = lowerBound(this.xs, t);
    if (i === 0) return;
    this.xs.splice(0, i);
    this.widths.splice(0, i);
    for (const col of this.ys) col.splice(0, i);
  }

  clear(): void {
    this.xs.length = 0;
    this.widths.length = 0;
    for (const col of this.ys) col.length = 0;
  }

  /** The typical interval between raw samples: the median of neighbouring raw differences. */
  rawStep(): number {
    const diffs: number[] = [];
    for (let i = 1; i < this.xs.length && diffs.length < 512; i++) {
      const j = this.xs.length - i; // newest first: the agent's current interval
      if (this.widths[j] === 0 && this.widths[j - 1] === 0) diffs.push(this.xs[j]! - this.xs[j - 1]!);
    }
    return median(diffs) ?? 0;
  }

  /** uPlot's data: [xs, ...columns], with a null point inside every gap. */
  toPlot(): [number[], ...Value[][]] {
    return withGaps(this.xs, this.ys, this.widths, this.rawStep());
  }
}

export function lowerBound(xs: readonly number[], t: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Copies of `xs` and `ys` with a null inserted after every point followed by a gap. `rawStep`
 * is the width of a raw point (width 0); with no known step (a single raw sample) no gap is cut.
 */
export function withGaps(
  xs: readonly number[],
  ys: readonly Value[][],
  widths: readonly number[],
  rawStep: number,
  factor = GAP_FACTOR,
): [number[], ...Value[][]] {
  const outX: number[] = [];
  const outY: Value[][] = ys.map(() => []);
  for (let i = 0; i < xs.length; i++) {
    outX.push(xs[i]!);
    for (let c = 0; c < ys.length; c++) outY[c]!.push(ys[c]![i] ?? null);
    if (i + 1 < xs.length) {
      const w = Math.max(widths[i] || rawStep, widths[i + 1] || rawStep);
      const dt = xs[i + 1]! - xs[i]!;
      if (w > 0 && dt > factor * w) {
        outX.push(xs[i]! + Math.min(w, dt / 2));
        for (let c = 0; c < ys.length; c++) outY[c]!.push(null);
      }
    }
  }
  return [outX, ...outY];
}
