// The dashboard's figures in the browser (Debian's Chromium through playwright-core), driven by
// bench/dashboard.py, which starts the API on a seeded database and passes BASE_URL, EMAIL,
// PASSWORD, SERVER_ID (one hour of history), RUNS, UPDATE_SECONDS. Prints one JSON line.
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

const env = process.env;
const require = createRequire(join(env.REPO_ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");
const BASE = env.BASE_URL;
const RUNS = Number(env.RUNS ?? 7);

// Before any page script: when a measured mark appears, note the time two frames later (the
// frame that shows it has been painted), and collect every long task.
const INIT = () => {
  window.__painted = {};
  window.__longtasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      requestAnimationFrame(() =>
        requestAnimationFrame(
          () => (window.__painted[e.name] = performance.now()),
        ),
      );
  }).observe({ type: "mark" });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      window.__longtasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask" });
};

const context = await chromium.launchPersistentContext(
  mkdtempSync(join(tmpdir(), "fp-bench-")),
  {
    executablePath: env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1400, height: 900 },
  },
);
await context.addInitScript(INIT);
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(60_000);
await page.goto(`${BASE}/login`);
await page.fill('input[name="email"]', env.EMAIL);
await page.fill('input[name="password"]', env.PASSWORD);
await page.click('button[type="submit"]');
await page.waitForSelector("h1:has-text('Fleet')");

async function painted(mark) {
  await page.waitForFunction((m) => window.__painted[m] !== undefined, mark, {
    polling: 50,
  });
  return page.evaluate((m) => window.__painted[m], mark);
}

// --- a server page with one hour of history --------------------------------------------------
const serverRuns = [];
for (let i = 0; i < RUNS; i++) {
  await page.goto(`${BASE}/servers/${env.SERVER_ID}?tab=metrics&range=1h`);
  serverRuns.push(await painted("server:history-chart"));
}
const points = Number(await page.getAttribute("figure.chart", "data-points"));
// The raw limit, in the same run: the page's own history calls, fetched bare from a loaded page.
const serverRaw = [];
for (let i = 0; i < RUNS; i++) {
  serverRaw.push(
    await page.evaluate(async (id) => {
      const t = JSON.parse(localStorage.getItem("fleetpulse.session")).access;
      const h = { Authorization: `Bearer ${t}` };
      const end = new Date(Date.now() + 5000).toISOString();
      const start = new Date(Date.now() - 3605_000).toISOString();
      const q = (p) =>
        fetch(`/api/v1/metrics/${id}/${p}&start=${start}&end=${end}`, {
          headers: h,
        }).then((r) => r.json());
      const t0 = performance.now();
      const latest = await fetch(`/api/v1/metrics/${id}/latest`, {
        headers: h,
      }).then((r) => r.json());
      await Promise.all([
        q("history?metric=cpu_percent&resolution=auto"),
        q("history?metric=memory_percent&resolution=auto"),
        ...latest.disks.map((d) =>
          q(
            `disks/history?mount=${encodeURIComponent(d.mount)}&metric=percent&resolution=auto`,
          ),
        ),
      ]);
      return performance.now() - t0;
    }, env.SERVER_ID),
  );
}

// --- the fleet page with every server of the user ---------------------------------------------
const fleetRuns = [];
for (let i = 0; i < RUNS; i++) {
  await page.goto(`${BASE}/`);
  fleetRuns.push(await painted("fleet:rendered"));
}
const rows = await page.evaluate(
  () => document.querySelectorAll(".frow:not([hidden])").length,
);
const summary = await page.textContent(".summary");
const fleetRaw = [];
for (let i = 0; i < RUNS; i++) {
  fleetRaw.push(
    await page.evaluate(async () => {
      const t = JSON.parse(localStorage.getItem("fleetpulse.session")).access;
      const t0 = performance.now();
      await fetch("/api/v1/fleet", {
        headers: { Authorization: `Bearer ${t}` },
      }).then((r) => r.json());
      return performance.now() - t0;
    }),
  );
}

// --- live updates: every server changes every second (the fleet socket's most: one frame per
// flush interval with every server in it), fed through the page's own socket code. The frames
// come from this benchmark (Playwright's WebSocket routing), so the page's cost is measured
// alone, whatever the API's socket does.
const ids = await page.evaluate(async () => {
  const t = JSON.parse(localStorage.getItem("fleetpulse.session")).access;
  const r = await fetch("/api/v1/fleet", {
    headers: { Authorization: `Bearer ${t}` },
  });
  return (await r.json()).servers.map((s) => s.server_id);
});
let sent = 0;
const timers = [];
await page.routeWebSocket(/\/ws\/fleet$/, (ws) => {
  let timer;
  ws.onMessage((message) => {
    const frame = JSON.parse(String(message));
    if (frame.type === "auth") {
      ws.send(
        JSON.stringify({
          type: "auth_success",
          expires_at: new Date(Date.now() + 600_000).toISOString(),
        }),
      );
      timer ??= setInterval(() => {
        const now = new Date().toISOString();
        const data = ids.map((id, i) => ({
          server_id: id,
          status: (sent + i) % 97 === 0 ? "stale" : "online",
          last_seen: now,
          sample_time: now,
          cpu_percent: (sent * 13 + i * 7) % 100,
          memory_percent: 30 + ((sent + i) % 50),
          disk_percent: 50 + (i % 40),
          disk_mount: "/",
        }));
        ws.send(JSON.stringify({ type: "fleet_update", data }));
        sent++;
      }, 1000);
      timers.push(timer);
    }
  });
  ws.onClose(() => clearInterval(timer));
});
const sortKey = env.SORT ?? "cpu";
await page.goto(`${BASE}/?sort=${sortKey}&desc=1`);
await painted("fleet:rendered");
const seconds = Number(env.UPDATE_SECONDS ?? 20);
// The same page with the socket open and no updates, for as long: the machine's own long tasks
// (a shared, loaded machine stretches any task), the baseline of the figure below.
async function scroll() {
  await page.mouse.move(700, 500);
  for (let i = 0; i < 20; i++) {
    await page.mouse.wheel(0, 800);
    await page.waitForTimeout(100);
  }
}
const phases = {};
async function phase(name, work) {
  await page.evaluate(() => (window.__longtasks.length = 0));
  await work();
  const tasks = await page.evaluate(() => window.__longtasks);
  phases[name] = {
    over_50ms: tasks.filter((t) => t.duration > 50).length,
    max_ms: Math.round(tasks.reduce((m, t) => Math.max(m, t.duration), 0)),
  };
}
timers.forEach((t) => clearInterval(t)); // no updates: the machine's and the page's own long tasks
await phase("quiet", () => page.waitForTimeout(seconds * 1000));
await phase("scrolling, no updates", scroll);
await page.goto(`${BASE}/?sort=${sortKey}&desc=1`); // the socket again, updates flowing
await painted("fleet:rendered");
let cdp = null;
if (env.PROFILE) {
  cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.start");
}
const before = await page.evaluate(
  () => document.querySelector(".frow .num")?.textContent,
);
await phase("updates", () => page.waitForTimeout(seconds * 1000));
await phase("updates while scrolling", scroll);

if (cdp) {
  const { profile } = await cdp.send("Profiler.stop");
  const self = new Map();
  const dt = profile.timeDeltas;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const key = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0) / 1000);
  });
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20);
  console.error(
    top.map(([k, v]) => `${v.toFixed(0).padStart(7)} ms  ${k}`).join("\n"),
  );
}
const after = await page.evaluate(
  () => document.querySelector(".frow .num")?.textContent,
);
for (const t of timers) clearInterval(t);
await context.close();

console.log(
  JSON.stringify({
    runs: RUNS,
    server: { ms: serverRuns, raw_ms: serverRaw, cpu_points: points },
    fleet: { ms: fleetRuns, raw_ms: fleetRaw, rows_in_dom: rows, summary },
    live: {
      seconds,
      frames_sent: sent,
      updates_per_frame: ids.length,
      phases,
      changed: before !== after,
    },
  }),
);
process.exit(0);
