/**
 * Logs: the logs socket's recent lines, then the live tail; a level filter and a search (both
 * applied to the live tail in the page and to older lines by the REST API); pause (lines keep
 * arriving into a buffer and show on resume); older lines page by page through the cursor.
 */
import { clear, h, setText } from "../lib/dom";
import { setQuery } from "../lib/router";
import { formatLocal, formatUtc, plural } from "../lib/units";
import type { ServerLive } from "./server";

const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const MAX_LINES = 5000;

interface Line {
  time: string;
  entry_id: string;
  level: string;
  source: string | null;
  message: string;
}

export function logsTab(live: ServerLive, host: HTMLElement): () => void {
  const params = new URLSearchParams(location.search);
  let minLevel = params.get("level") ?? "";
  let search = params.get("q") ?? "";
  let paused = false;
  const lines: Line[] = []; // newest last
  const seen = new Set<string>();
  const buffered: Line[] = [];
  let cursor: string | null = null;
  let olderDone = false;

  const level = h(
    "select",
    { "aria-label": "Level at least" },
    h("option", { value: "" }, "All levels"),
    ...LEVELS.map((l) => h("option", { value: l }, `${l} and above`)),
  );
  level.value = minLevel;
  const searchBox = h("input", {
    type: "search",
    placeholder: "Search   ( / )",
    "data-filter": "",
    value: search,
    "aria-label": "Search logs",
  });
  const pause = h("button", { class: "ghost", "aria-pressed": "false" }, "Pause");
  const count = h("span", { class: "muted" });
  const older = h("button", { class: "ghost small" }, "Older lines");
  const list = h("div", { class: "logs", role: "log", "aria-live": "polite", tabindex: 0 });
  clear(
    host,
    h("div", { class: "toolbar" }, level, searchBox, pause, count),
    h("div", { class: "older" }, older),
    list,
  );

  function passes(l: Line): boolean {
    if (minLevel && LEVELS.indexOf(l.level.toUpperCase()) < LEVELS.indexOf(minLevel)) return false;
    if (search && !l.message.toLowerCase().includes(search.toLowerCase())) return false;
    return true;
  }

  function lineEl(l: Line): HTMLElement {
    const t = h("time", { datetime: l.time, title: formatUtc(l.time) }, formatLocal(l.time));
    return h(
      "div",
      { class: `line lvl-${l.level.toLowerCase()}`, "data-entry": l.entry_id },
      t,
      h("span", { class: "lvl" }, l.level),
      l.source ? h("span", { class: "src" }, l.source) : null,
      h("span", { class: "msg" }, l.message),
    );
  }

  function redraw(): void {
    const shown = lines.filter(passes);
    list.replaceChildren(...shown.slice(-1000).map(lineEl));
    list.scrollTop = list.scrollHeight;
    status();
  }

  function status(): void {
    setText(
      count,
      paused ? `paused · ${plural(buffered.length, "new line")} waiting` : plural(lines.length, "line"),
    );
  }

  function add(l: Line, atEnd: boolean): void {
    if (seen.has(l.entry_id)) return;
    seen.add(l.entry_id);
    if (atEnd) {
      lines.push(l);
      if (lines.length > MAX_LINES) seen.delete(lines.shift()!.entry_id);
    } else {
      lines.unshift(l);
    }
  }

  function appendLive(l: Line): void {
    if (paused) {
      buffered.push(l);
      status();
      return;
    }
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 30;
    const before = lines.length;
    add(l, lines.length === 0 || l.time >= lines[lines.length - 1]!.time);
    if (lines.length === before) return;
    if (l.time < (lines[lines.length - 2]?.time ?? "")) {
      lines.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      redraw();
      return;
    }
    if (passes(l)) {
      list.append(lineEl(l));
      while (list.childElementCount > 1000) list.firstElementChild?.remove();
      if (stick) list.scrollTop = list.scrollHeight;
    }
    status();
  }

  const socket = live.ctx
    .socket(`/ws/logs/${live.server.id}`, {
      resumable: true,
      params: () => ({ lines: 200 }),
      onFrame: (frame) => {
        if (frame.type !== "log") return;
        const d = frame["data"] as {
          level: string;
          message: string;
          timestamp: string;
          source: string | null;
          entry_id: string;
        };
        appendLive({
          time: d.timestamp,
          entry_id: d.entry_id,
          level: d.level,
          source: d.source,
          message: d.message,
        });
      },
    })
    .start();

  /** Older lines than the oldest shown, through the REST cursor (filters applied by the API). */
  async function loadOlder(): Promise<void> {
    if (olderDone) return;
    older.disabled = true;
    try {
      const oldest = lines[0]?.time;
      const query: Record<string, string | number | string[] | undefined> = {
        limit: 200,
        q: search || undefined,
        level: minLevel ? LEVELS.slice(LEVELS.indexOf(minLevel)) : undefined,
      };
      if (cursor) query["cursor"] = cursor;
      // The end is exclusive: 1 ms past the oldest line keeps its neighbours of the same instant
      // (duplicates are dropped by entry id).
      else if (oldest) query["end"] = new Date(Date.parse(oldest) + 1).toISOString();
      const page = await live.ctx.client.logs(live.server.id, query);
      for (const item of page.items)
        add(
          {
            time: item.time,
            entry_id: item.entry_id,
            level: item.level,
            source: item.source,
            message: item.message,
          },
          false,
        );
      cursor = page.next_cursor;
      olderDone = cursor === null;
      older.textContent = olderDone ? "No older lines (in the last day)" : "Older lines";
      const keep = list.scrollHeight - list.scrollTop;
      list.replaceChildren(...lines.filter(passes).map(lineEl));
      list.scrollTop = list.scrollHeight - keep;
      status();
    } catch (e) {
      older.textContent = `Older lines (failed: ${(e as Error).message})`;
    } finally {
      older.disabled = olderDone;
    }
  }

  function refilter(): void {
    setQuery({ level: minLevel || null, q: search || null });
    cursor = null;
    olderDone = false;
    older.disabled = false;
    older.textContent = "Older lines";
    redraw();
    // With a filter, the lines in memory may be few: fetch matching older ones from the API.
    if (minLevel || search) void loadOlder();
  }

  level.addEventListener("change", () => {
    minLevel = level.value;
    refilter();
  });
  let debounce: ReturnType<typeof setTimeout> | undefined;
  searchBox.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      search = searchBox.value;
      refilter();
    }, 250);
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      for (const l of buffered.splice(0)) add(l, true);
      lines.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      redraw();
    }
    status();
  });
  older.addEventListener("click", () => void loadOlder());
  status();
  return () => {
    clearTimeout(debounce);
    socket.stop();
  };
}
