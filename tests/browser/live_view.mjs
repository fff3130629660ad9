// Loads the live view in Debian's headless Chromium (driven by playwright-core) and
// checks it from the DOM: the supervision tree is shown, numbers update live, the
// nodes and links are listed, and no request leaves 127.0.0.1. Saves a screenshot.
//
// node tests/browser/live_view.mjs URL SCREENSHOT
// env PLAYWRIGHT_CORE: the playwright-core package directory (.ci/browser installs it).
//
// Prints one line `RESULT {json}` and exits 0 when every check passes; otherwise says
// which check failed and exits 1.

import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot || !process.env.PLAYWRIGHT_CORE) {
  console.error("usage: PLAYWRIGHT_CORE=dir node live_view.mjs URL SCREENSHOT");
  process.exit(2);
}
const require = createRequire(join(process.env.PLAYWRIGHT_CORE, "package.json"));
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const fail = (why) => {
  throw new Error(why);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const profile = mkdtempSync(join(tmpdir(), "troupe-live-view-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1480, height: 860 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let code = 0;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  const outside = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The page must need nothing but its own server: any other request is refused and
  // counted.
  await page.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === "127.0.0.1" || host === "localhost") return route.continue();
    outside.push(route.request().url());
    return route.abort();
  });

  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.waitForSelector("#tree li", { timeout: 20000 });
  const tree = await page.textContent("#tree");
  for (const name of ["supervisor workers", "dispatcher", "supervisor tools", "Worker"]) {
    if (!tree.includes(name)) fail(`the tree does not show "${name}": ${tree.slice(0, 400)}`);
  }

  const read = async () => ({
    updates: Number(await page.textContent("#updates")),
    total: await page.textContent("#rate-total"),
    rate: await page.textContent("#rate"),
    agents: await page.textContent("#agents"),
  });
  // Wait for the first live event, then watch the numbers move.
  await page.waitForFunction(() => Number(document.getElementById("updates").textContent) >= 2, null, {
    timeout: 20000,
  });
  const first = await read();
  await sleep(3500);
  const second = await read();
  if (!(second.updates > first.updates)) fail(`the update counter did not advance: ${first.updates} then ${second.updates}`);
  if (second.total === first.total) fail(`the live number did not change: ${first.total} then ${second.total}`);
  // Each listed agent shows its own message rate once two snapshots have listed it.
  const rated = await page.textContent("#tree");
  if (!/⇢ [\d,]+\/s/.test(rated)) fail(`no agent shows a message rate: ${rated.slice(0, 400)}`);
  const status = await page.textContent("#status");
  if (status !== "live") fail(`the page says "${status}", not "live"`);

  const nodes = await page.$$eval("#nodes tbody tr", (rows) => rows.length);
  if (nodes < 2) fail(`${nodes} nodes listed, expected the example's 2`);
  const links = await page.textContent("#links");
  if (!links.includes("→")) fail(`no link listed: ${links}`);
  if (!links.includes("linked")) fail(`no link shows as up, with its traffic: ${links}`);
  const types = await page.textContent("#types");
  if (!types.includes("Worker")) fail(`no Worker row in the types table: ${types}`);
  if (errors.length) fail(`the page threw: ${errors.join("; ")}`);
  if (outside.length) fail(`the page asked for something outside 127.0.0.1: ${outside.join(", ")}`);

  // Let the chart gather a few more points for the picture.
  await sleep(2000);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(
    "RESULT " +
      JSON.stringify({
        tree: true,
        updates: [first.updates, second.updates],
        total: [first.total, second.total],
        rate: second.rate,
        agents: second.agents,
        nodes,
        outside: outside.length,
        screenshot,
      }),
  );
} catch (e) {
  console.error("live view check failed: " + e.message);
  code = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
