// Loads the logmq dashboard in headless Debian chromium and checks that its figures move
// while a producer runs. Usage: node dashboard.mjs URL SCREENSHOT.png
// Exit code 0 when every check passed; prints what it saw either way.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node dashboard.mjs URL SCREENSHOT.png");
  process.exit(2);
}
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "logmq-chromium-"));
const DEADLINE_MS = 60_000;

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url, { waitUntil: "load", timeout: DEADLINE_MS });

  await page.waitForSelector("#status.ok", { timeout: DEADLINE_MS });
  const row = 'tr[data-topic="orders"]';
  await page.waitForSelector(row, { timeout: DEADLINE_MS });
  const end = async () => Number((await page.textContent(`${row} td.end`)).replace(/[^0-9.]/g, "")
    ) * ((await page.textContent(`${row} td.end`)).endsWith("k") ? 1000 : 1);
  const first = await end();
  // the end offset must grow and a records/s figure must appear while the producer runs
  await page.waitForFunction(([sel, v]) => {
    const t = document.querySelector(sel + " td.end").textContent;
    const n = parseFloat(t) * (t.endsWith("k") ? 1000 : t.endsWith("M") ? 1e6 : 1);
    const rate = document.querySelector(sel + " td.rate").textContent;
    return n > v && rate !== "-" && parseFloat(rate) > 0;
  }, [row, first], { timeout: DEADLINE_MS, polling: 250 });
  // wait for a few samples so the sparkline has a line to draw
  await page.waitForFunction(sel => {
    const p = document.querySelector(sel + " svg.spark polyline");
    return p && p.getAttribute("points").split(" ").length >= 3;
  }, row, { timeout: DEADLINE_MS, polling: 250 });
  const later = await end();
  console.log(`orders end offset ${first} -> ${later}, rate ` +
              await page.textContent(`${row} td.rate`));

  await page.waitForSelector('tr[data-group="billing"] td.lag', { timeout: DEADLINE_MS });
  console.log("billing lag " + await page.textContent('tr[data-group="billing"] td.lag'));
  await page.waitForSelector('tr[data-queue="jobs/workers"] td.depth', { timeout: DEADLINE_MS });
  const depth = await page.textContent('tr[data-queue="jobs/workers"] td.depth');
  console.log("jobs/workers depth " + depth);
  if (!(parseFloat(depth) > 0)) fail("queue depth should be > 0, got " + depth);
  if (!(later > first)) fail(`end offset did not grow: ${first} -> ${later}`);
  if (errors.length) fail("page errors: " + errors.join("; "));
  fs.mkdirSync(path.dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  console.log("screenshot " + shot);
} catch (e) {
  fail(String(e && e.stack || e));
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
