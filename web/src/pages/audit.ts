/** The signed-in user's own audit log (every change they made, refused ones too). */
import type { Ctx } from "../context";
import type { Audit } from "../lib/api";
import { clear, h, toast } from "../lib/dom";
import { auditTable } from "./server-manage";

export function auditPage(ctx: Ctx, host: HTMLElement): void {
  const box = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const more = h("button", { class: "ghost small", hidden: true }, "Older");
  let rows: Audit[] = [];
  host.append(
    h("div", { class: "page-head" }, h("h1", null, "Audit log")),
    h("p", { class: "muted" }, "Your own actions. A server's full log is on its page (owners)."),
    box,
    more,
  );
  let cursor: string | null = null;
  const load = (from?: string) =>
    ctx.client
      .myAudit(from)
      .then((page) => {
        rows = [...rows, ...page.items];
        cursor = page.next_cursor;
        clear(box, auditTable(rows, ctx.names));
        more.hidden = cursor === null;
      })
      .catch((e: Error) => toast(e.message, "error"));
  more.addEventListener("click", () => void (cursor !== null && load(cursor)));
  void load();
}
