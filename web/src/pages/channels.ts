/** Notification channels (webhook, Slack): create, test, assign to a server or a rule, delete. */
import type { Ctx } from "../context";
import { ApiError, type Channel, type ChannelIn, type RuleOut, type Server } from "../lib/api";
import { clear, confirmDialog, dataTable, h, toast } from "../lib/dom";

export function channelsPage(ctx: Ctx, host: HTMLElement): void {
  const list = h("div");
  const editor = h("div");
  let servers: Server[] = [];
  let rules: RuleOut[] = [];
  clear(
    host,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Notification channels"),
      h("span", { class: "spacer" }),
      h("button", { class: "primary", id: "new-channel", onclick: () => edit(null) }, "New channel"),
    ),
    h(
      "p",
      { class: "muted" },
      "Where alerts are sent when they fire and resolve. Secrets are write-only: the page never sees them again.",
    ),
    editor,
    list,
  );

  const serverName = (id: string | null) =>
    id ? (servers.find((s) => s.id === id)?.name ?? id.slice(0, 8)) : "all my servers";
  const ruleName = (id: string | null) =>
    id ? (rules.find((r) => r.id === id)?.rule.name ?? id.slice(0, 8)) : "all my rules";

  async function test(c: Channel): Promise<void> {
    try {
      const r = await ctx.client.testChannel(c.id);
      toast(
        r.delivered
          ? `Delivered (HTTP ${r.status_code ?? "?"})`
          : `Not delivered: ${r.error ?? `HTTP ${r.status_code}`}`,
        r.delivered ? "ok" : "error",
      );
    } catch (e) {
      toast((e as Error).message, "error");
    }
  }

  async function load(): Promise<void> {
    try {
      const [channels, srv, rl] = await Promise.all([
        ctx.client.channels(),
        ctx.client.servers(),
        ctx.client.rules(),
      ]);
      servers = srv.filter((s) => s.role === "owner");
      rules = rl;
      clear(
        list,
        channels.length === 0
          ? h("p", { class: "muted" }, "No channels yet.")
          : dataTable(
              [
                h("th", null, "Name"),
                h("th", null, "Kind"),
                h("th", null, "URL"),
                h("th", null, "Assigned to"),
                h("th", null, "State"),
                h("th", null, ""),
              ],
              [
                ...channels.map((c) =>
                  h(
                    "tr",
                    null,
                    h("td", null, c.name),
                    h("td", null, c.kind),
                    h(
                      "td",
                      null,
                      h("code", null, c.url),
                      c.has_secret ? h("span", { class: "pill" }, "signed") : null,
                    ),
                    h("td", null, `${serverName(c.server_id)} · ${ruleName(c.rule_id)}`),
                    h("td", null, c.enabled ? "enabled" : "disabled"),
                    h(
                      "td",
                      { class: "actions" },
                      h("button", { class: "small", onclick: () => void test(c) }, "Send test"),
                      h("button", { class: "small", onclick: () => edit(c) }, "Edit"),
                      h(
                        "button",
                        {
                          class: "small danger",
                          onclick: async () => {
                            if (await confirmDialog(`Delete the channel ${c.name}?`, "Delete"))
                              ctx.client
                                .deleteChannel(c.id)
                                .then(load, (e: Error) => toast(e.message, "error"));
                          },
                        },
                        "Delete",
                      ),
                    ),
                  ),
                ),
              ],
            ),
      );
    } catch (e) {
      clear(
        list,
        h(
          "p",
          { class: "error" },
          e instanceof ApiError && e.status === 404
            ? "This API does not serve notification channels yet."
            : (e as Error).message,
        ),
      );
    }
  }

  function edit(existing: Channel | null): void {
    const name = h("input", {
      value: existing?.name ?? "",
      required: true,
      maxlength: 200,
      id: "channel-name",
    });
    const kind = h(
      "select",
      { id: "channel-kind" },
      h("option", { value: "webhook" }, "Webhook (JSON POST)"),
      h("option", { value: "slack" }, "Slack incoming webhook"),
    );
    kind.value = existing?.kind ?? "webhook";
    const url = h("input", {
      type: "url",
      value: existing?.url ?? "",
      required: true,
      placeholder: "https://…",
      id: "channel-url",
    });
    const secret = h("input", {
      type: "password",
      placeholder: existing?.has_secret ? "unchanged (write to replace)" : "optional: signs each request",
      autocomplete: "off",
      id: "channel-secret",
    });
    const server = h(
      "select",
      { id: "channel-server" },
      h("option", { value: "" }, "All my servers"),
      ...servers.map((s) => h("option", { value: s.id }, s.name)),
    );
    server.value = existing?.server_id ?? "";
    const rule = h(
      "select",
      { id: "channel-rule" },
      h("option", { value: "" }, "All my rules"),
      ...rules.map((r) => h("option", { value: r.id }, r.rule.name)),
    );
    rule.value = existing?.rule_id ?? "";
    const enabled = h("input", { type: "checkbox", checked: existing?.enabled ?? true });
    const field = (label: string, el: HTMLElement) => h("label", null, h("span", null, label), el);
    const form = h(
      "form",
      { class: "card" },
      h("h2", null, existing ? `Edit ${existing.name}` : "New channel"),
      h(
        "div",
        { class: "grid" },
        field("Name", name),
        field("Kind", kind),
        field("URL", url),
        field("Secret", secret),
        field("Server", server),
        field("Rule", rule),
      ),
      h("label", { class: "check" }, enabled, " enabled"),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", class: "ghost", onclick: () => clear(editor) }, "Cancel"),
        h("button", { class: "primary", type: "submit" }, existing ? "Save" : "Create"),
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body: ChannelIn = {
        name: name.value.trim(),
        kind: kind.value as ChannelIn["kind"],
        url: url.value.trim(),
        server_id: server.value || null,
        rule_id: rule.value || null,
        enabled: enabled.checked,
      };
      if (secret.value) body.secret = secret.value;
      (existing ? ctx.client.updateChannel(existing.id, body) : ctx.client.createChannel(body))
        .then(() => {
          toast("Channel saved", "ok");
          clear(editor);
          void load();
        })
        .catch((e: Error) => toast(e.message, "error"));
    });
    clear(editor, form);
    name.focus();
  }

  void load();
}
