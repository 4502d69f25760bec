/** The banner under the header: says when the page is disconnected or a server's data is stale. */
import { h } from "./dom";

const messages = new Map<string, { text: string; kind: "warn" | "error" }>();
let host: HTMLElement | null = null;

export function bannerHost(): HTMLElement {
  host ??= h("div", { id: "banner", role: "alert", "aria-live": "assertive" });
  render();
  return host;
}

export function setBanner(key: string, text: string | null, kind: "warn" | "error" = "warn"): void {
  const prev = messages.get(key);
  if (text === null) {
    if (!prev) return;
    messages.delete(key);
  } else {
    if (prev && prev.text === text && prev.kind === kind) return;
    messages.set(key, { text, kind });
  }
  render();
}

function render(): void {
  if (!host) return;
  host.replaceChildren(...[...messages.values()].map((m) => h("div", { class: `banner ${m.kind}` }, m.text)));
  host.hidden = messages.size === 0;
}

/** An episode acknowledged or resolved anywhere on the page: its live alert cards go away. */
export function liveAlertHandled(episodeId: string): void {
  for (const card of document.querySelectorAll<HTMLElement>("#live-alerts .live-alert"))
    if (card.dataset["episode"] === episodeId) card.remove();
}
