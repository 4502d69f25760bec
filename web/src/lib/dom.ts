/**
 * The page's whole view layer: `h()` builds elements, text always goes in as text (never as
 * HTML, so nothing a server or a log line says can run as markup), and there are no inline
 * styles or handlers in markup, so the page works under `Content-Security-Policy: default-src 'self'`.
 */
type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener> & {
  class?: string;
};

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2).toLowerCase(), v);
      } else if (k === "class") {
        el.className = String(v);
      } else if (k === "value" && "value" in el) {
        (el as HTMLInputElement).value = String(v);
      } else if (k === "checked" && "checked" in el) {
        (el as HTMLInputElement).checked = Boolean(v);
      } else {
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** A `<time>` showing the browser's local time, with UTC in its hover title. */
export function timeEl(iso: string | null | undefined, text: string): HTMLTimeElement {
  const el = h("time", iso ? { datetime: iso } : null, text);
  if (iso)
    el.title = new Date(iso)
      .toISOString()
      .replace("T", " ")
      .replace(/\.\d+Z$/, " UTC");
  return el;
}

/** A modal confirmation; resolves true when the user confirms. */
export function confirmDialog(question: string, action: string, danger = true): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm" },
      h("p", null, question),
      h(
        "form",
        { method: "dialog", class: "row" },
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h("button", { value: "ok", type: "submit", class: danger ? "danger" : "primary" }, action),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** A short-lived message at the bottom of the page. */
export function toast(message: string, kind: "info" | "error" | "ok" = "info"): void {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.appendChild(host);
  }
  const el = h("div", { class: `toast ${kind}` }, message);
  host.appendChild(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A `table.data`: one header row of `heads` (`th` elements) over the `rows` (`tr` elements). */
export function dataTable(heads: Child[], rows: Child[], className = "data"): HTMLTableElement {
  return h(
    "table",
    { class: className },
    h("thead", null, h("tr", null, ...heads)),
    h("tbody", null, ...rows),
  );
}
