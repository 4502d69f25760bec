/** API keys, sharing, the audit log and the settings of one server. */
import type { ApiKey, Audit, Role, Share } from "../lib/api";
import { clear, confirmDialog, copyText, dataTable, h, timeEl, toast } from "../lib/dom";
import { navigate } from "../lib/router";
import { formatAgo, formatLocal } from "../lib/units";
import type { ServerLive } from "./server";

// --- keys --------------------------------------------------------------------------------------

function copyButton(text: string, label: string): HTMLButtonElement {
  const b = h("button", { class: "small", type: "button" }, label);
  b.addEventListener("click", () => {
    void copyText(text).then((ok) => {
      b.textContent = ok ? "Copied" : "Select and copy";
      setTimeout(() => (b.textContent = label), 2000);
    });
  });
  return b;
}

export function keysTab(live: ServerLive, host: HTMLElement): void {
  const created = h("div");
  const list = h("div");
  const name = h("input", {
    name: "key-name",
    placeholder: "name (optional), e.g. production agent",
    maxlength: 200,
  });
  const form = h(
    "form",
    { class: "row" },
    name,
    h("button", { class: "primary", type: "submit", id: "create-key" }, "Create key"),
  );
  clear(
    host,
    h("div", { class: "card" }, h("h3", null, "New API key for this server's agent"), form, created),
    list,
  );

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    live.ctx.client
      .createKey(live.server.id, name.value.trim() || null)
      .then((key) => {
        name.value = "";
        const keyCode = h("code", { class: "secret", id: "new-key" }, key.key);
        const install = key.install_command
          ? h(
              "div",
              { class: "install" },
              h("p", null, "Install the agent with this key (run it on the server):"),
              h("pre", { class: "console", id: "install-command" }, key.install_command),
              copyButton(key.install_command, "Copy command"),
            )
          : null;
        clear(
          created,
          h(
            "div",
            { class: "once" },
            h("p", null, h("strong", null, "Copy the key now: it is shown this once.")),
            h("div", { class: "row" }, keyCode, copyButton(key.key, "Copy key")),
            install,
          ),
        );
        void load();
      })
      .catch((e: Error) => toast(e.message, "error"));
  });

  async function revoke(k: ApiKey): Promise<void> {
    if (
      !(await confirmDialog(
        `Revoke the key ${k.name ?? k.id.slice(0, 8)}? Its agent is disconnected at once.`,
        "Revoke",
      ))
    )
      return;
    try {
      await live.ctx.client.revokeKey(k.id);
      toast("Key revoked", "ok");
      void load();
    } catch (e) {
      toast((e as Error).message, "error");
    }
  }

  async function load(): Promise<void> {
    try {
      const keys = await live.ctx.client.keys(live.server.id);
      clear(
        list,
        keys.length === 0
          ? h("p", { class: "muted" }, "No keys yet.")
          : dataTable(
              [
                h("th", null, "Name"),
                h("th", null, "Created"),
                h("th", null, "Last used"),
                h("th", null, "State"),
                h("th", null, ""),
              ],
              [
                ...keys.map((k) =>
                  h(
                    "tr",
                    { "data-key": k.id },
                    h("td", null, k.name ?? h("span", { class: "muted" }, k.id.slice(0, 8))),
                    h("td", null, timeEl(k.created_at, formatLocal(k.created_at))),
                    h("td", null, k.last_used ? timeEl(k.last_used, formatAgo(k.last_used)) : "never"),
                    h("td", null, k.is_active ? "active" : h("span", { class: "muted" }, "revoked")),
                    h(
                      "td",
                      { class: "actions" },
                      k.is_active
                        ? h("button", { class: "small danger", onclick: () => void revoke(k) }, "Revoke")
                        : null,
                    ),
                  ),
                ),
              ],
            ),
      );
    } catch (e) {
      clear(list, h("p", { class: "error" }, (e as Error).message));
    }
  }
  void load();
}

// --- sharing -----------------------------------------------------------------------------------

export function sharingTab(live: ServerLive, host: HTMLElement): void {
  const list = h("div");
  const email = h("input", {
    type: "email",
    placeholder: "their account's email",
    required: true,
    "aria-label": "Email",
  });
  const role = h(
    "select",
    { "aria-label": "Role" },
    h("option", { value: "viewer" }, "viewer: reads"),
    h("option", { value: "operator" }, "operator: also commands, containers, rules, acknowledging"),
    h("option", { value: "owner" }, "owner: everything"),
  );
  const form = h(
    "form",
    { class: "row" },
    email,
    role,
    h("button", { class: "primary", type: "submit" }, "Share"),
  );
  clear(
    host,
    live.isOwner
      ? h("div", { class: "card" }, h("h3", null, "Share this server"), form)
      : h("p", { class: "muted" }, `Your role here: ${live.server.role}.`),
    list,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    live.ctx.client
      .share(live.server.id, email.value.trim(), role.value as Role)
      .then(() => {
        email.value = "";
        toast("Shared", "ok");
        void load();
      })
      .catch((e: Error) => toast(e.message, "error"));
  });

  async function load(): Promise<void> {
    try {
      const shares: Share[] = await live.ctx.client.shares(live.server.id);
      clear(
        list,
        shares.length === 0
          ? h("p", { class: "muted" }, "Not shared with anyone.")
          : dataTable(
              [h("th", null, "User"), h("th", null, "Role"), h("th", null, "Since"), h("th", null, "")],
              [
                ...shares.map((s) =>
                  h(
                    "tr",
                    null,
                    h("td", null, `${s.username} <${s.email}>`),
                    h("td", null, s.role),
                    h("td", null, timeEl(s.created_at, formatLocal(s.created_at))),
                    h(
                      "td",
                      { class: "actions" },
                      live.isOwner
                        ? h(
                            "button",
                            {
                              class: "small danger",
                              onclick: async () => {
                                if (!(await confirmDialog(`Stop sharing with ${s.email}?`, "Remove"))) return;
                                live.ctx.client
                                  .unshare(live.server.id, s.user_id)
                                  .then(load, (e: Error) => toast(e.message, "error"));
                              },
                            },
                            "Remove",
                          )
                        : null,
                    ),
                  ),
                ),
              ],
            ),
      );
    } catch (e) {
      clear(list, h("p", { class: "error" }, (e as Error).message));
    }
  }
  void load();
}

// --- audit -------------------------------------------------------------------------------------

export function auditTable(rows: Audit[], names: Map<string, string>): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted" }, "Nothing recorded.");
  return dataTable(
    [
      h("th", null, "When"),
      h("th", null, "Action"),
      h("th", null, "Server"),
      h("th", null, "Request"),
      h("th", null, "Status"),
      h("th", null, "Details"),
    ],
    [
      ...rows.map((a) =>
        h(
          "tr",
          null,
          h("td", null, timeEl(a.time, formatLocal(a.time))),
          h("td", null, a.action),
          h("td", null, a.server_id ? (names.get(a.server_id) ?? a.server_id.slice(0, 8)) : "–"),
          h("td", null, h("code", null, `${a.method} ${a.path}`)),
          h("td", { class: a.status >= 400 ? "error" : "" }, String(a.status)),
          h("td", null, Object.keys(a.detail).length ? h("code", null, JSON.stringify(a.detail)) : ""),
        ),
      ),
    ],
  );
}

export function auditTab(live: ServerLive, host: HTMLElement): void {
  const box = h("div", null, h("p", { class: "muted" }, "Loading…"));
  host.append(box);
  live.ctx.client
    .serverAudit(live.server.id)
    .then((page) => clear(box, auditTable(page.items, live.ctx.names)))
    .catch((e: Error) => clear(box, h("p", { class: "error" }, e.message)));
}

// --- settings ----------------------------------------------------------------------------------

export function settingsTab(live: ServerLive, host: HTMLElement): void {
  const s = live.server;
  const name = h("input", { value: s.name, required: true, maxlength: 200, "aria-label": "Name" });
  const hostInput = h("input", { value: s.host ?? "", "aria-label": "Host" });
  const tags = h("input", {
    value: (s.tags ?? []).join(", "),
    "aria-label": "Tags",
    placeholder: "prod, eu",
  });
  const form = h(
    "form",
    { class: "card" },
    h("h3", null, "Server"),
    h("label", null, h("span", null, "Name"), name),
    h("label", null, h("span", null, "Host"), hostInput),
    h("label", null, h("span", null, "Tags"), tags),
    h("button", { class: "primary", type: "submit" }, "Save"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tagList = tags.value
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    const body: { name: string; host: string | null; tags?: string[] } = {
      name: name.value.trim(),
      host: hostInput.value.trim() || null,
    };
    if (tagList.length || (s.tags ?? []).length) body.tags = tagList;
    live.ctx.client
      .updateServer(s.id, body)
      .then((updated) => {
        live.server = { ...live.server, ...updated };
        live.ctx.names.set(s.id, updated.name);
        toast("Saved", "ok");
      })
      .catch((e: Error) => toast(e.message, "error"));
  });
  const remove = h("button", { class: "danger" }, "Delete this server");
  remove.addEventListener("click", () => {
    void confirmDialog(`Delete ${s.name} and all its data? Its keys stop working at once.`, "Delete").then(
      (yes) => {
        if (!yes) return;
        live.ctx.client.deleteServer(s.id).then(
          () => {
            toast(`${s.name} deleted`, "ok");
            navigate("/");
          },
          (e: Error) => toast(e.message, "error"),
        );
      },
    );
  });
  clear(host, form, h("div", { class: "card" }, h("h3", null, "Danger zone"), remove));
}
