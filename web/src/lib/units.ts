/** Human units: bytes and rates scaled to KiB/MiB/GiB, percentages, durations, times. */

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 -> "1.5 KiB"; null -> "–". Three significant digits at most. */
export function formatBytes(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  let v = Math.abs(value);
  let i = 0;
  while (v >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  const sign = value < 0 ? "-" : "";
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${sign}${v.toFixed(digits)} ${BYTE_UNITS[i]}`;
}

export function formatRate(bytesPerSecond: number | null | undefined): string {
  if (bytesPerSecond === null || bytesPerSecond === undefined || !Number.isFinite(bytesPerSecond)) return "–";
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatPercent(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return `${value.toFixed(digits)} %`;
}

/** Seconds as "45 s", "3 min", "2 h 5 min", "3 d 4 h". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** "12 s ago" relative to `now` (ms). */
export function formatAgo(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "–";
  const seconds = (now - t) / 1000;
  if (seconds < 1) return "just now";
  return `${formatDuration(seconds)} ago`;
}

// One formatter each, made once: `toLocaleString` with options builds a new one per call, which
// was the fleet page's costliest function under live updates (bench/dashboard.py's profile).
const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const LOCAL_MINUTES = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
});

/** A time in the browser's time zone (what a user reads)... */
export function formatLocal(iso: string | number | null | undefined, withSeconds = true): string {
  if (iso === null || iso === undefined) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "–";
  return (withSeconds ? LOCAL : LOCAL_MINUTES).format(d);
}

/** ...and the same instant in UTC, for the hover title. */
export function formatUtc(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, " UTC");
}

/** Scale helper for a chart axis of bytes/s: the unit that keeps `max` between 1 and 1024. */
export function rateUnit(max: number): { unit: string; divisor: number } {
  let divisor = 1;
  let i = 0;
  while (max / divisor >= 1024 && i < BYTE_UNITS.length - 1) {
    divisor *= 1024;
    i++;
  }
  return { unit: `${BYTE_UNITS[i]}/s`, divisor };
}

/** "1 server", "3 servers": a count with its noun (English plural in -s unless given). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
