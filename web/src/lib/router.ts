/**
 * Client routes. The URL holds the view (page, server, tab, time range, zoom, filters), so a
 * link reproduces what its sender saw; the API serves index.html for every one of these paths.
 */
export interface Route {
  name: "login" | "register" | "fleet" | "server" | "alerts" | "rules" | "channels" | "audit" | "notfound";
  params: Record<string, string>;
  query: URLSearchParams;
}

const PATTERNS: [Route["name"], RegExp][] = [
  ["login", /^\/login\/?$/],
  ["register", /^\/register\/?$/],
  ["fleet", /^\/$/],
  ["server", /^\/servers\/(?<id>[0-9a-fA-F-]{36})\/?$/],
  ["alerts", /^\/alerts\/?$/],
  ["rules", /^\/rules\/?$/],
  ["channels", /^\/channels\/?$/],
  ["audit", /^\/audit\/?$/],
];

export function parse(pathname: string, search: string): Route {
  for (const [name, re] of PATTERNS) {
    const m = re.exec(pathname);
    if (m) return { name, params: { ...(m.groups ?? {}) }, query: new URLSearchParams(search) };
  }
  return { name: "notfound", params: {}, query: new URLSearchParams(search) };
}

type Listener = () => void;
const listeners = new Set<Listener>();

export function onNavigate(listener: Listener): void {
  listeners.add(listener);
}

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  for (const l of listeners) l();
}

/** Changes query parameters of the current view without re-rendering it (view state only). */
export function setQuery(updates: Record<string, string | null>, push = false): void {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(updates)) {
    if (v === null || v === "") url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  const next = url.pathname + (url.search ? url.search : "") + url.hash;
  if (next === location.pathname + location.search + location.hash) return;
  if (push) history.pushState(null, "", next);
  else history.replaceState(null, "", next);
}

/** Makes plain `<a href="/...">` links navigate inside the page. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey)
      return;
    const a = (ev.target as Element | null)?.closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const href = a.getAttribute("href");
    if (!href || !href.startsWith("/") || href.startsWith("/api/") || href.startsWith("/docs")) return;
    ev.preventDefault();
    navigate(href);
  });
}
