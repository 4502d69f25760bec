/** The charts' pure helpers: byte axes and isolated samples (unit tested without a DOM). */

/** Axis steps for bytes: powers of two of each binary unit (512 B, 1 KiB, 2 KiB...), so two ticks
 * never print the same label (decimal steps of 0.2 on a 0-1 B/s axis all read "0 B/s"). */
export const BINARY_INCRS: number[] = Array.from({ length: 60 }, (_, i) => 2 ** (i - 10));

/** The y range of a byte or rate chart: from 0, at least 1 KiB high, with headroom. */
export function bytesRange(max: number | null): [number, number] {
  const top = max !== null && Number.isFinite(max) && max > 0 ? max * 1.1 : 0;
  return [0, Math.max(1024, top)];
}

/**
 * The indices of values with no neighbour (a null or the edge on both sides): a line needs two
 * points, so an isolated sample, between two gaps or alone in a range, is drawn as a dot.
 */
export function isolatedPoints(values: ArrayLike<number | null | undefined>): number[] | null {
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    const before = i > 0 ? values[i - 1] : null;
    const after = i + 1 < values.length ? values[i + 1] : null;
    if ((before === null || before === undefined) && (after === null || after === undefined)) out.push(i);
  }
  return out.length > 0 ? out : null;
}
