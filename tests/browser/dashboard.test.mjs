// The dashboard's end-to-end scenario in Debian's Chromium, against the real stack that
// tests/browser/conftest.py starts (BASE_URL). Steps run in order and share one browser; each
// saves a screenshot in ARTIFACTS. Run by tests/browser/test_dashboard.py (`make test`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createHmac, randomUUID } from "node:crypto";
import { createServer } from "node:http";

const env = process.env;
const require = createRequire(join(env.REPO_ROOT, "web", "package.json"));
const { chromium } = require("playwright-core");

const BASE = env.BASE_URL;
const work = env.WORK_DIR;
const email = `e2e-${randomUUID().slice(0, 8)}@example.com`;
const password = "a-long-browser-password";
const serverName = `e2e-${randomUUID().slice(0, 6)}`;
const logFile = join(work, "app.log");
const marker = `browser-line-${randomUUID().slice(0, 8)}`;
const problems = [];
let context;
let page;
let agent;
let agentOutput = "";
let serverId;
let apiKey;

async function shot(name) {
  // Every step runs on the live sockets: a "Live updates disconnected" banner is a failure.
  const banner = await page.evaluate(() => {
    const el = document.querySelector("#banner");
    return el && !el.hidden ? el.textContent : "";
  });
  if (/Live updates/.test(banner)) problems.push(`${name}: banner "${banner}"`);
  await page.screenshot({
    path: join(env.ARTIFACTS, `${name}.png`),
    fullPage: false,
  });
}

before(async () => {
  context = await chromium.launchPersistentContext(
    mkdtempSync(join(work, "chromium-")),
    {
      executablePath: env.CHROMIUM,
      headless: true,
      // As root in a container, without network beyond loopback (the machine's closed network).
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
      timezoneId: "Europe/Berlin", // local time on the page, UTC on hover: not the same here
    },
  );
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // The one thing the page must never do: break its Content-Security-Policy.
    if (
      /Content Security Policy|Refused to (execute|apply|load)/i.test(m.text())
    )
      problems.push(`CSP: ${m.text()}`);
  });
  writeFileSync(logFile, "");
});

after(async () => {
  if (agent && agent.exitCode === null) agent.kill("SIGTERM");
  await context?.close();
});

test("sign in: register, sign out, sign in again", async () => {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login/);
  await page.click('a[href="/register"]');
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="username"]', email.split("@")[0]);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForSelector("text=No servers yet");
  await page.click("#signout");
  await page.waitForURL(/\/login/);
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForSelector("h1:has-text('Fleet')");
  assert.equal(await page.textContent("#who"), email);
  await shot("01-signed-in");
});

test("create a server and a key: the key is shown once, with the install command", async () => {
  await page.click("text=Add server");
  await page.fill('dialog input[name="name"]', serverName);
  await page.fill('dialog input[name="tags"]', "e2e, browser");
  await page.click("#add-server-submit");
  await page.waitForURL(/\/servers\/[0-9a-f-]{36}\?tab=keys/);
  serverId = new URL(page.url()).pathname.split("/")[2];
  await page.fill('input[name="key-name"]', "browser test agent");
  await page.click("#create-key");
  apiKey = (await page.textContent("#new-key")).trim();
  assert.ok(apiKey.length > 20, "a key is shown");
  const install = await page.textContent("#install-command");
  assert.ok(install.includes(apiKey), "the install command carries the key");
  await shot("02-key");
});

test("an agent reports with the key: the chart moves and a log line arrives", async () => {
  agent = spawn(env.PYTHON, ["-m", "fleetpulse_agent", "run"], {
    cwd: env.REPO_ROOT,
    env: {
      ...env,
      FLEETPULSE_AGENT_SERVER_URL: env.AGENT_URL,
      FLEETPULSE_AGENT_API_KEY: apiKey,
      FLEETPULSE_AGENT_STATE_DIR: join(work, "agent"),
      FLEETPULSE_AGENT_INTERVAL_SECONDS: "1",
      FLEETPULSE_AGENT_STARTUP_JITTER_SECONDS: "0",
      FLEETPULSE_AGENT_LOG_FILES: JSON.stringify([logFile]),
      FLEETPULSE_AGENT_LOG_POLL_SECONDS: "0.5",
      FLEETPULSE_AGENT_COMMANDS_ENABLED: "true",
      FLEETPULSE_AGENT_COMMAND_ALLOWLIST: JSON.stringify(["echo [a-z0-9-]+"]),
      FLEETPULSE_AGENT_COLLECT_CONTAINERS: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agent.stdout.on("data", (d) => (agentOutput += d));
  agent.stderr.on("data", (d) => (agentOutput += d));
  await page.goto(`${BASE}/servers/${serverId}?tab=metrics&range=15m`);
  const cpu = page.locator("figure.chart", { hasText: "CPU" }).first();
  await page.waitForFunction(
    () =>
      Number(document.querySelector("figure.chart")?.dataset.points ?? 0) >= 3,
    null,
    { timeout: 60_000 },
  );
  const before = Number(await cpu.getAttribute("data-points"));
  await page.waitForFunction(
    (n) =>
      Number(document.querySelector("figure.chart")?.dataset.points ?? 0) > n,
    before,
    {
      timeout: 30_000,
    },
  );
  await page.waitForSelector(".page-head .status.s-online");
  await shot("03-metrics");

  await page.click('.tabs a[data-tab="logs"]');
  const writer = setInterval(
    () =>
      appendFileSync(
        logFile,
        `WARNING ${marker} written by the browser test\n`,
      ),
    500,
  );
  try {
    await page.waitForSelector(`.logs .line:has-text("${marker}")`, {
      timeout: 60_000,
    });
  } finally {
    clearInterval(writer);
  }
  await shot("04-logs");
});

test("an alert fires, shows at once wherever the user is, and is acknowledged", async () => {
  await page.goto(`${BASE}/rules?server=${serverId}`);
  await page.click("#new-rule");
  await page.fill("#rule-name", "cpu at or above zero");
  await page.selectOption("#rule-server", serverId);
  await page.selectOption("#rule-metric", "cpu");
  await page.selectOption("#rule-comparison", "gte");
  await page.fill("#rule-threshold", "0");
  await page.fill("#rule-for", "0");
  await page.selectOption("#rule-severity", "critical");
  await page.selectOption("#backtest-days", "1");
  await page.click("#run-backtest");
  await page.waitForFunction(() =>
    /would (have|not have) fired/.test(
      document.querySelector("#backtest-verdict")?.textContent ?? "",
    ),
  );
  const verdict = await page.textContent("#backtest-verdict");
  assert.match(verdict, /would have fired once in the last day/, verdict);
  await page.waitForSelector(".rule-form figure.chart");
  await shot("05-backtest");
  // The user also has the server's page open in a second tab: the live alert shows there at
  // once, on its own (no reload), while this tab goes on to the alerts page.
  const second = await context.newPage();
  await second.goto(`${BASE}/servers/${serverId}?tab=processes`);
  await second.waitForSelector(".page-head .status.s-online");
  await page.click("#save-rule");
  await page.waitForSelector("text=Rule created");
  await second.waitForSelector("#live-alerts .live-alert.firing", {
    timeout: 60_000,
  });
  await second.screenshot({ path: join(env.ARTIFACTS, "06-live-alert.png") });
  await second.close();
  await page.click('nav.top a[data-nav="alerts"]');
  await page.waitForSelector(".alert-row.firing", { timeout: 30_000 });
  const row = page.locator(".alert-row.firing").first();
  await row.locator("button", { hasText: "Acknowledge" }).click();
  await page.waitForSelector(".alert-row.firing :text('acknowledged')");
  await shot("07-acknowledged");
});

test("a notification channel is created and its test message delivered, signed", async () => {
  // A webhook receiver on loopback: what the API sends when the user presses "Send test".
  const received = [];
  const receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const secret = "a-browser-webhook-secret";
  try {
    await page.click('nav.top a[data-nav="channels"]');
    await page.click("#new-channel");
    await page.fill("#channel-name", "browser webhook");
    await page.fill(
      "#channel-url",
      `http://127.0.0.1:${receiver.address().port}/hook`,
    );
    await page.fill("#channel-secret", secret);
    await page.click("form.card button[type=submit]");
    await page.waitForSelector("text=Channel saved");
    const row = page.locator("table.data tr", { hasText: "browser webhook" });
    await row.waitFor();
    assert.match(await row.textContent(), /signed/);
    await row.locator("button", { hasText: "Send test" }).click();
    await page.waitForSelector("text=Delivered (HTTP 200)");
    assert.equal(received.length, 1);
    const { headers, body } = received[0];
    const expected = createHmac("sha256", secret)
      .update(`${headers["x-fleetpulse-timestamp"]}.${body}`)
      .digest("hex");
    assert.equal(headers["x-fleetpulse-signature"], `sha256=${expected}`);
    await shot("08-channel");
  } finally {
    receiver.close();
  }
});

test("an operator runs an allowed command", async () => {
  await page.goto(`${BASE}/servers/${serverId}?tab=commands`);
  await page.check("#commands-enabled");
  await page.fill("#allowlist", "echo [a-z0-9-]+");
  await page.click("form.card button:has-text('Save')");
  await page.waitForSelector('input[name="command"]');
  await page.fill('input[name="command"]', "echo hello-from-the-browser");
  await page.click("button:has-text('Run')");
  await page.waitForFunction(
    () =>
      /\[exit 0/.test(
        document.querySelector("#console-output")?.textContent ?? "",
      ),
    null,
    {
      timeout: 45_000,
    },
  );
  assert.match(
    await page.textContent("#console-output"),
    /hello-from-the-browser/,
  );
  await shot("09-command");
});

test("no step showed a 'Live updates disconnected' banner", () => {
  assert.deepEqual(problems, [], problems.join("\n"));
});

// The revocation reaches ingest through Kafka and closes the agent's socket at once; its
// disconnect must reach the fleet page even when persistence has not stored it yet when the
// page opens (the fleet socket's seed then replays it from Kafka: see api/live/service.py).
test("revoking the key takes the server offline", async () => {
  await page.goto(`${BASE}/servers/${serverId}?tab=keys`);
  await page.click("tr[data-key] button:has-text('Revoke')");
  await page.click('dialog.confirm button[value="ok"]');
  await page.waitForSelector("text=revoked");
  await page.goto(`${BASE}/?q=${serverName}`);
  try {
    await page.waitForSelector(
      `.frow[data-status="offline"]:has-text("${serverName}")`,
      { timeout: 30_000 },
    );
  } finally {
    await shot("10-offline");
  }
  // The agent was refused: it stops by itself.
  const deadline = Date.now() + 30_000;
  while (agent.exitCode === null && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 200));
  assert.notEqual(
    agent.exitCode,
    null,
    `the agent still runs after its key was revoked:\n${agentOutput.slice(-2000)}`,
  );
});
