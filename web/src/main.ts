/** The dashboard's entry: the session, the shell (header, banner, live alerts) and the router. */
import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { Ctx, type AlertData, type Page } from "./context";
import { refreshTokens } from "./lib/api";
import { bannerHost, liveAlertHandled } from "./lib/banner";
import { clear, h, toast } from "./lib/dom";
import { interceptLinks, navigate, onNavigate, parse, type Route } from "./lib/router";
import { browserStorage, TokenManager, STORAGE_KEY } from "./lib/tokens";
import { alertsPage } from "./pages/alerts";
import { auditPage } from "./pages/audit";
import { channelsPage } from "./pages/channels";
import { fleetPage } from "./pages/fleet";
import { loginPage, registerPage } from "./pages/login";
import { rulesPage } from "./pages/rules";
import { serverPage } from "./pages/server";

const tokens = new TokenManager(browserStorage(localStorage), refreshTokens);
const ctx = new Ctx(tokens);
const app = document.getElementById("app")!;
let destroy: (() => void) | void = undefined;
let shellMain: HTMLElement | null = null;
let shownFor: string | null = null;

const PAGES: Record<string, Page> = {
  fleet: fleetPage,
  server: serverPage,
  alerts: alertsPage,
  rules: rulesPage,
  channels: channelsPage,
  audit: auditPage,
};

function liveAlert(data: AlertData): void {
  let host = document.getElementById("live-alerts");
  if (!host) {
    host = h("div", { id: "live-alerts", "aria-live": "assertive" });
    document.body.appendChild(host);
  }
  const name = ctx.names.get(data.server_id) ?? data.server_id.slice(0, 8);
  const card = h(
    "div",
    { class: `live-alert ${data.state} sev-${data.severity}`, "data-episode": data.episode_id },
    h("strong", null, data.state === "firing" ? `Firing: ${data.rule_name}` : `Resolved: ${data.rule_name}`),
    h("div", null, h("a", { href: `/servers/${data.server_id}?tab=alerts` }, name), " · ", data.message),
    h(
      "div",
      { class: "row" },
      data.state === "firing"
        ? h(
            "button",
            {
              class: "small",
              onclick: async () => {
                try {
                  await ctx.client.acknowledge(data.episode_id);
                  toast("Acknowledged", "ok");
                  card.remove();
                } catch (e) {
                  toast(String((e as Error).message), "error");
                }
              },
            },
            "Acknowledge",
          )
        : null,
      h("button", { class: "small ghost", onclick: () => card.remove(), "aria-label": "Dismiss" }, "Dismiss"),
    ),
  );
  if (data.state === "resolved") liveAlertHandled(data.episode_id); // the firing card is over
  host.prepend(card);
  while (host.children.length > 5) host.lastElementChild?.remove();
  if (data.state === "resolved") setTimeout(() => card.remove(), 15_000);
  document.dispatchEvent(new CustomEvent("fleetpulse:alert", { detail: data }));
}

function shell(): HTMLElement {
  const main = h("main", { id: "main" });
  const nav = h(
    "nav",
    { class: "top", "aria-label": "Main" },
    h("a", { href: "/", class: "brand" }, "FleetPulse"),
    h("a", { href: "/", "data-nav": "fleet" }, "Fleet"),
    h("a", { href: "/alerts", "data-nav": "alerts" }, "Alerts"),
    h("a", { href: "/rules", "data-nav": "rules" }, "Rules"),
    h("a", { href: "/channels", "data-nav": "channels" }, "Channels"),
    h("a", { href: "/audit", "data-nav": "audit" }, "Audit"),
    h("span", { class: "spacer" }),
    h("span", { class: "who", id: "who" }, tokens.current?.userEmail ?? ""),
    h("button", { class: "ghost", id: "signout", onclick: () => void signOut() }, "Sign out"),
  );
  clear(app, h("header", null, nav), bannerHost(), main);
  return main;
}

async function signOut(): Promise<void> {
  const refresh = tokens.current?.refresh;
  if (refresh) await ctx.client.logout(refresh).catch(() => undefined);
  tokens.set(null);
}

function render(): void {
  const route: Route = parse(location.pathname, location.search);
  const signedIn = tokens.current !== null;
  if (!signedIn && route.name !== "login" && route.name !== "register") {
    const next = location.pathname + location.search;
    navigate(`/login${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`, true);
    return;
  }
  if (destroy) destroy();
  destroy = undefined;
  if (route.name === "login" || route.name === "register") {
    if (signedIn) {
      navigate(route.query.get("next") ?? "/", true);
      return;
    }
    shellMain = null;
    shownFor = null;
    ctx.stopFleet();
    clear(app);
    destroy = (route.name === "login" ? loginPage : registerPage)(ctx, app, route);
    return;
  }
  if (!shellMain || shownFor !== tokens.current?.userEmail) {
    shellMain = shell();
    shownFor = tokens.current?.userEmail ?? null;
    void ctx.refreshNames().catch(() => undefined);
    ctx.startFleet(liveAlert);
  }
  for (const a of app.querySelectorAll<HTMLAnchorElement>("nav.top a[data-nav]")) {
    a.classList.toggle("active", a.dataset["nav"] === route.name);
    if (a.dataset["nav"] === route.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = PAGES[route.name];
  clear(shellMain);
  if (!page) {
    shellMain.append(h("h1", null, "Not found"), h("p", null, h("a", { href: "/" }, "Back to the fleet")));
    return;
  }
  destroy = page(ctx, shellMain);
}

tokens.onChange((signedIn) => {
  if (!signedIn) {
    ctx.stopFleet();
    navigate("/login", true);
  }
});
// Another tab signed in, out, or rotated the tokens.
window.addEventListener("storage", (ev) => {
  if (ev.key === STORAGE_KEY) tokens.reload();
});
window.addEventListener("popstate", render);
// Alerts from a server page's own socket show the same way as the fleet socket's.
document.addEventListener("fleetpulse:live-alert", (ev) => liveAlert((ev as CustomEvent<AlertData>).detail));
interceptLinks(app);
onNavigate(render);
// `/` focuses the page's filter; Escape leaves it.
document.addEventListener("keydown", (ev) => {
  const target = ev.target as HTMLElement | null;
  const typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  if (ev.key === "/" && !typing) {
    const filter = document.querySelector<HTMLInputElement>("[data-filter]");
    if (filter) {
      ev.preventDefault();
      filter.focus();
      filter.select();
    }
  } else if (ev.key === "Escape" && typing) {
    target.blur();
  }
});
tokens.schedule();
render();
