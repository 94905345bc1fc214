// Browser end-to-end test of the game across nodes: two `volley serve`
// nodes over a real Redis behind `volley proxy`; a headless Chromium tab
// plays /game through the proxy, the node under it is stopped (SIGTERM),
// its match moves to the other node, and the page keeps playing as the
// same player, without a reload.
//
// Usage: VOLLEY_BIN=target/debug/volley node game_cluster.e2e.mjs
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bin, check, freePort, launchBrowser, startServer, stopServer, timeout } from "./harness.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "volley-game-cluster-e2e-"));
const procs = [];
const redisPort = await freePort();
const redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
  stdio: "ignore",
});
procs.push(redis);
const broker = `redis://127.0.0.1:${redisPort}`;
await waitFor(async () => {
  try {
    const { createConnection } = await import("node:net");
    return await new Promise((resolve) => {
      const s = createConnection(redisPort, "127.0.0.1", () => { s.end(); resolve(true); });
      s.on("error", () => resolve(false));
    });
  } catch { return false; }
}, "redis");

const nodes = {};
for (const name of ["n1", "n2"]) {
  const port = await freePort();
  const proc = await startServer(port, join(dataDir, name), [
    "--node-id", name, "--broker", broker, "--game-bots-per-room", "4", "--game-world-size", "2000",
    // One token secret for the cluster: any node takes any node's seat tokens.
    "--token-secret", "browser test shared secret",
  ]);
  nodes[name] = { port, proc };
  procs.push(proc);
}
const listen = await freePort();
const proxy = spawn(bin, [
  "proxy", "--listen", `127.0.0.1:${listen}`, "--affinity", "query:node", "--health", "tcp",
  "--backend", `n1=127.0.0.1:${nodes.n1.port}`, "--backend", `n2=127.0.0.1:${nodes.n2.port}`,
], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" } });
procs.push(proxy);
await waitFor(async () => (await fetch(`http://127.0.0.1:${listen}/readyz`).catch(() => null))?.ok, "the proxy");
await waitFor(async () => {
  const r = await fetch(`http://127.0.0.1:${nodes.n1.port}/api/game/nodes`).then((r) => r.json()).catch(() => null);
  return r?.nodes?.length === 2;
}, "the nodes to know each other");

const browser = await launchBrowser();
let failed = null;
let step = "open";
try {
  const page = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
  page.on("pageerror", (e) => { failed = failed || new Error(`page error: ${e.message}`); });
  await page.goto(`http://127.0.0.1:${listen}/game`);
  await page.fill("#name", "carol");
  await page.click("#play");
  await page.waitForFunction(() => window.volleyGame?.state === "playing" && window.volleyGame.header, null, { timeout });
  const before = await page.evaluate(() => ({ player: window.volleyGame.welcome.player, room: window.volleyGame.welcome.room }));

  step = "find the node";
  let home = null;
  await waitFor(async () => {
    for (const [name, { port }] of Object.entries(nodes)) {
      const r = await fetch(`http://127.0.0.1:${port}/api/game/nodes`).then((r) => r.json()).catch(() => null);
      const self = r?.nodes?.find((n) => n.node === name);
      if (self?.matches?.some((m) => m.id === before.room)) home = name;
    }
    return home !== null;
  }, "the match's node");
  const other = home === "n1" ? "n2" : "n1";

  step = "drain";
  await page.mouse.move(700, 350);
  const stopped = Date.now();
  await stopServer(nodes[home].proc);
  await page.waitForFunction((other) => window.volleyGame.node === other && window.volleyGame.state === "playing"
    && window.volleyGame.welcome?.resumed, other, { timeout });
  const moved = Date.now() - stopped;
  const after = await page.evaluate(() => ({ player: window.volleyGame.welcome.player, room: window.volleyGame.welcome.room, tick: window.volleyGame.header.tick }));
  check(after.player === before.player && after.room === before.room, `same seat after the move: ${JSON.stringify({ before, after })}`);

  step = "keeps playing";
  await page.waitForFunction((tick) => window.volleyGame.header.tick > tick + 20, after.tick, { timeout });
  const frame = await page.evaluate(() => window.volleyGame.frame().entities.filter((e) => e.own).length);
  check(frame > 0, "own cells drawn on the new node");
  if (failed) throw failed;
  console.log(`game cluster e2e ok: match ${before.room} moved ${home} -> ${other}, the page was back playing as player ${after.player} ${moved} ms after SIGTERM`);
} catch (e) {
  failed = new Error(`step ${step}: ${e.message}`);
} finally {
  await browser.close();
  for (const p of procs.reverse()) if (p.exitCode === null) await stopServer(p);
  rmSync(dataDir, { recursive: true, force: true });
}
if (failed) {
  console.error(failed.message);
  process.exit(1);
}

async function waitFor(ok, what, ms = 20000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
