// Browser end-to-end test of `volley cluster`'s live page: a two-node
// cluster (PostgreSQL, Redis, volley proxy) brought up by `volley cluster
// up`; headless Chromium opens its admin address, sees every node healthy
// with its connections and rates, pauses a node with its button and sees
// it down, resumes it and sees it healthy again, and finds both faults in
// the list. `volley cluster down` then leaves nothing running.
//
// Usage: VOLLEY_BIN=target/debug/volley node cluster.e2e.mjs [screenshot.png]
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bin, check, launchBrowser, timeout } from "./harness.mjs";

const dir = mkdtempSync(join(tmpdir(), "volley-cluster-e2e-"));
const up = spawn(bin, ["cluster", "up", "--dir", dir, "--nodes", "2", "--quiet"], {
  stdio: ["ignore", "ignore", "inherit"],
  env: { ...process.env, RUST_LOG: "warn" },
});
let state = null;
const deadline = Date.now() + 90_000;
while (!state) {
  if (Date.now() > deadline) throw new Error("the cluster never came up");
  if (existsSync(join(dir, "cluster.json"))) state = JSON.parse(readFileSync(join(dir, "cluster.json"), "utf8"));
  else await new Promise((r) => setTimeout(r, 300));
}
const page_url = `http://127.0.0.1:${state.admin}/`;

const browser = await launchBrowser();
let failed = null;
try {
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
  page.on("pageerror", (e) => { failed = failed || new Error(`page error: ${e.message}`); });
  await page.goto(page_url);
  const health = (node) => page.locator(`#nodes tbody tr:has(td:text-is("${node}")) td:nth-child(2)`);
  for (const node of ["n1", "n2"]) {
    await health(node).filter({ hasText: "healthy" }).waitFor({ timeout });
  }
  check((await page.locator("#services tbody tr").count()) === 3, "store, broker and proxy listed");
  check((await page.locator("#relays tbody tr").count()) === 6, "six links: two per node");
  await page.click('#nodes button[data-action="pause"][data-target="n2"]');
  await page.locator("#message").filter({ hasText: "paused n2" }).waitFor({ timeout });
  await health("n2").filter({ hasText: "paused" }).waitFor({ timeout });
  await page.click('#relays button[data-action="cut"][data-target="n1-broker"]');
  await page.locator('#relays tbody tr:has(td:text-is("n1-broker")) td:nth-child(2)').filter({ hasText: "cut" }).waitFor({ timeout });
  if (process.argv[2]) await page.screenshot({ path: process.argv[2], fullPage: true });
  await page.click('#relays button[data-action="heal"][data-target="n1-broker"]');
  await page.click('#nodes button[data-action="resume"][data-target="n2"]');
  await health("n2").filter({ hasText: "healthy" }).waitFor({ timeout });
  await page.locator("#faults tbody tr").nth(3).waitFor({ timeout });
  const faults = await page.locator("#faults tbody tr td:nth-child(2)").allTextContents();
  check(["pause", "cut", "heal", "resume"].every((f) => faults.includes(f)), `the faults listed: ${faults}`);
  if (failed) throw failed;
  console.log("cluster live page: nodes healthy, pause/cut/heal/resume by button, faults listed");
} finally {
  await browser.close();
  try { execFileSync(bin, ["cluster", "down", "--dir", dir], { stdio: "ignore" }); } catch { up.kill("SIGKILL"); }
  rmSync(dir, { recursive: true, force: true });
}
