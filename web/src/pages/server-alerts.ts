/** A server's alerts and its rules, with a link to write one. */
import { h } from "../lib/dom";
import { alertsView } from "./alerts";
import type { ServerLive } from "./server";

export function alertsTab(live: ServerLive, host: HTMLElement): () => void {
  const body = h("div");
  host.append(
    h(
      "p",
      null,
      h(
        "a",
        { href: `/rules?server=${live.server.id}` },
        "Rules of this server, with a backtest before saving →",
      ),
    ),
    body,
  );
  return alertsView(live.ctx, body, live.server.id);
}
