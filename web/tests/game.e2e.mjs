// Browser end-to-end test of the arena at /game of `volley serve`, in
// headless Chromium: two tabs join the same room, steer with the mouse, see
// each other in the roster, see other players (bots) move, and a reload
// takes the cell back.
//
// Usage: VOLLEY_BIN=target/debug/volley node game.e2e.mjs
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, freePort, launchBrowser, startServer, stopServer, timeout } from "./harness.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "volley-game-e2e-"));
const port = await freePort();
// A small world so bots are in view of the players.
const server = await startServer(port, dataDir, [
  "--game-world-size", "2000", "--game-pellets", "600", "--game-bots-per-room", "12",
]);
const browser = await launchBrowser();
let failed = null;
let step = "open";
try {
  const pages = [];
  for (const name of ["alice", "bob"]) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    const page = await context.newPage();
    page.on("pageerror", (e) => { failed = failed || new Error(`${name}: page error: ${e.message}`); });
    await page.goto(`http://127.0.0.1:${port}/game`);
    await page.fill("#name", name);
    await page.click("#play");
    pages.push(page);
  }
  step = "join";
  const [alice, bob] = pages;
  for (const page of pages) {
    await page.waitForFunction(() => window.volleyGame?.state === "playing" && window.volleyGame.header, null, { timeout });
  }
  const roomA = await alice.evaluate(() => window.volleyGame.welcome.room);
  const roomB = await bob.evaluate(() => window.volleyGame.welcome.room);
  check(roomA === roomB, `both tabs in one room (${roomA}, ${roomB})`);

  step = "roster";
  await alice.waitForFunction(() => [...window.volleyGame.roster.values()].some((p) => p.name === "bob"), null, { timeout });
  await bob.waitForFunction(() => [...window.volleyGame.roster.values()].some((p) => p.name === "alice"), null, { timeout });

  step = "steer";
  // Alice points to one side: her cell must go there (input -> server -> snapshot).
  const ownX = (page) => page.evaluate(() => {
    const f = window.volleyGame.frame();
    const own = f.entities.filter((e) => e.own);
    return own.length ? own[0].x : null;
  });
  // Bots may eat her first: respawn and try again.
  let x0 = null, x1 = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!(await alice.evaluate(() => window.volleyGame.header.alive))) {
      await alice.click("#respawn");
      await alice.waitForFunction(() => window.volleyGame.header.alive, null, { timeout });
    }
    await alice.mouse.move(500, 350);
    await alice.waitForTimeout(300);
    x0 = await ownX(alice);
    // Alternate sides, in case she starts (or ends up) at a wall.
    const dir = attempt % 2 === 0 ? 1 : -1;
    await alice.mouse.move(500 + dir * 490, 350);
    await alice.waitForTimeout(1500);
    x1 = await ownX(alice);
    if (x0 !== null && x1 !== null && (x1 - x0) * dir > 30) break;
  }
  check(x0 !== null && x1 !== null && Math.abs(x1 - x0) > 30, `own cell followed the pointer (${x0} -> ${x1})`);
  const acked = await alice.evaluate(() => window.volleyGame.header.inputSeq);
  check(acked > 0, "server applied alice's inputs");

  step = "others move";
  // Positions of other players' cells seen by bob, one second apart.
  const others = () => bob.evaluate(() => {
    const g = window.volleyGame;
    const out = {};
    for (const e of g.frame().entities) if (e.kind === 1 && !e.own) out[e.id] = [e.x, e.y];
    return out;
  });
  let moved = 0;
  for (let attempt = 0; attempt < 10 && moved === 0; attempt++) {
    const a = await others();
    await bob.waitForTimeout(1000);
    const b = await others();
    moved = Object.keys(a).filter((id) => b[id] && (a[id][0] !== b[id][0] || a[id][1] !== b[id][1])).length;
  }
  check(moved > 0, "bob sees other players' cells move");

  step = "hud";
  await bob.waitForTimeout(1200);
  const stats = await bob.evaluate(() => ({ ...window.volleyGame.stats }));
  check(stats.snapshotsPerSec >= 15, `snapshot rate ${stats.snapshotsPerSec}/s`);
  check(stats.bytesPerSec > 0 && stats.bytesPerSec < 20000, `bandwidth ${stats.bytesPerSec} B/s`);
  check(stats.ping > 0, `ping ${stats.ping} ms`);
  const hud = await bob.textContent("#hud");
  check(/snapshots/.test(hud) && /KB\/s/.test(hud), `HUD shows rates: ${hud}`);
  const leaders = await bob.locator("#leaders li").count();
  check(leaders > 0, "leaderboard drawn");

  step = "reload";
  // A reload within the grace period takes bob's cell back.
  const bobId = await bob.evaluate(() => window.volleyGame.welcome.player);
  await bob.reload();
  await bob.click("#play");
  await bob.waitForFunction(() => window.volleyGame?.state === "playing", null, { timeout });
  const again = await bob.evaluate(() => ({ ...window.volleyGame.welcome, token: null }));
  check(again.resumed && again.player === bobId, `bob resumed as player ${bobId}: ${JSON.stringify(again)}`);
  if (failed) throw failed;
  console.log(`game e2e ok: room ${roomA}, alice moved ${Math.abs(x1 - x0).toFixed(0)} units, bob saw ${moved} cells move, ${stats.snapshotsPerSec} snapshots/s, ${(stats.bytesPerSec / 1024).toFixed(1)} KB/s, ping ${stats.ping.toFixed(1)} ms`);
} catch (e) {
  failed = new Error(`step ${step}: ${e.message}`);
} finally {
  await browser.close();
  await stopServer(server);
  rmSync(dataDir, { recursive: true, force: true });
}
if (failed) {
  console.error(failed.message);
  process.exit(1);
}
