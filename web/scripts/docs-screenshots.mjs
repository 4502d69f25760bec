// The README's screenshots (docs/img/fleet.png, docs/img/server.png), taken from a running
// `make run` with its demo login, in Debian's Chromium:
//
//   node web/scripts/docs-screenshots.mjs [http://127.0.0.1:8000] [server name, default: this machine]
//
// Let the demo run for ten minutes or so first, so the charts and sparklines have some history.
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "package.json"));
const { chromium } = require("playwright-core");
const base = process.argv[2] ?? "http://127.0.0.1:8000";
const server = process.argv[3] ?? hostname().split(".")[0];
const out = join(here, "..", "..", "docs", "img");

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "fp-shots-")), {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  viewport: { width: 1400, height: 820 },
  deviceScaleFactor: 1,
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(30_000);
await page.goto(`${base}/login`);
await page.fill('input[name="email"]', "demo@example.com");
await page.fill('input[name="password"]', "fleetpulse-demo");
await page.click('button[type="submit"]');
await page.waitForSelector(".frow[data-status]");
await page.waitForTimeout(3000); // a few live updates
await page.screenshot({ path: join(out, "fleet.png") });

await page.click(`a.frow:has-text("${server}")`);
await page.waitForSelector("figure.chart[data-points]");
await page.waitForFunction(() => Number(document.querySelector("figure.chart")?.dataset.points ?? 0) > 10);
await page.waitForTimeout(3000);
await page.screenshot({ path: join(out, "server.png") });
await context.close();
console.log(`wrote ${join(out, "fleet.png")} and ${join(out, "server.png")}`);
