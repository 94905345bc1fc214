// Browser end-to-end test of `volley serve` and its web client, in headless
// Chromium: two users chat in real time, a reload keeps history, and a
// server restart is survived (reconnect + resume, no message lost).
//
// Usage: VOLLEY_BIN=target/debug/volley node chat.e2e.mjs
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, freePort, launchBrowser, startServer as start, stopServer, timeout } from "./harness.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "volley-e2e-"));
const startServer = (port) => start(port, dataDir);

let step = "start";

const port = await freePort();
const base = `http://127.0.0.1:${port}/`;
let server = await startServer(port);
const browser = await launchBrowser();

const logs = [];
try {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  for (const page of [alice, bob]) page.setDefaultTimeout(timeout);
  for (const [who, page] of [["alice", alice], ["bob", bob]]) {
    page.on("console", (m) => logs.push(`${who} console: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`${who} pageerror: ${e.message}`));
    if (process.env.VOLLEY_E2E_FRAMES) {
      page.on("websocket", (ws) => {
        ws.on("framesent", (f) => logs.push(`${who} >> ${f.payload}`));
        ws.on("framereceived", (f) => logs.push(`${who} << ${f.payload}`));
      });
    }
    page.on("dialog", (d) => {
      logs.push(`${who} dialog: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
  }

  step = "guest logins";
  for (const [page, name] of [[alice, "alice"], [bob, "bob"]]) {
    await page.goto(base);
    await page.fill("#username", name);
    await page.click("#guest-button");
    await page.waitForSelector('#conn[data-state="open"]');
  }

  step = "alice creates a room, bob finds and joins it";
  await alice.fill("#new-room-name", "e2e");
  await alice.click("#new-room button");
  await alice.waitForSelector("#rooms li.active");
  await bob.fill("#find-room-query", "e2e");
  await bob.click("#find-room button");
  await bob.click("#found li");
  await bob.waitForSelector("#rooms li.active");
  await alice.waitForFunction(() => document.querySelector("#online").textContent === "2 online");

  step = "real-time messages both ways";
  await alice.fill("#text", "hello from alice");
  await alice.click("#send");
  await bob.waitForSelector('#messages li:has-text("hello from alice")');
  await bob.type("#text", "hi alice");
  await alice.waitForFunction(() => document.querySelector("#typing").textContent.includes("bob is typing"));
  await bob.click("#send");
  await alice.waitForSelector('#messages li:has-text("hi alice")');

  step = "a reload keeps history";
  await alice.reload();
  await alice.waitForSelector('#conn[data-state="open"]');
  await alice.waitForSelector('#messages li:has-text("hello from alice")');
  await alice.waitForSelector('#messages li:has-text("hi alice")');

  step = "unread badge for a room not in view";
  await bob.fill("#new-room-name", "side");
  await bob.click("#new-room button");
  await bob.waitForFunction(() => document.querySelector("#room-name").textContent === "side");
  await alice.fill("#text", "while bob looks elsewhere");
  await alice.click("#send");
  await bob.waitForFunction(() => document.querySelector("#rooms .badge")?.textContent === "1");

  step = "server restart";
  const stopped = await stopServer(server);
  check(stopped.code === 0, `server exits 0 on SIGTERM (got ${JSON.stringify(stopped)})`);
  await alice.waitForFunction(() => document.querySelector("#conn").dataset.state === "reconnecting");
  server = await startServer(port);
  await alice.waitForSelector('#conn[data-state="open"]', { timeout: 40000 });
  await bob.waitForSelector('#conn[data-state="open"]', { timeout: 40000 });
  await alice.fill("#text", "after the restart");
  await alice.click("#send");
  await bob.click('#rooms li:has-text("e2e")');
  await bob.waitForSelector('#messages li:has-text("after the restart")');
  await bob.waitForSelector('#messages li:has-text("while bob looks elsewhere")');
  const texts = await bob.$$eval("#messages li .text", (els) => els.map((e) => e.textContent));
  const expected = ["hello from alice", "hi alice", "while bob looks elsewhere", "after the restart"];
  check(JSON.stringify(texts) === JSON.stringify(expected), `bob's history in order, once each: ${JSON.stringify(texts)}`);

  step = "done";
  console.log("browser e2e: ok (guest login, room create/search/join, live messages, typing, reload, unread badge, restart)");
  if (process.env.VOLLEY_E2E_SCREENSHOT) await alice.screenshot({ path: process.env.VOLLEY_E2E_SCREENSHOT });
} catch (err) {
  console.error(`browser e2e failed at step "${step}": ${err.message}`);
  for (const line of logs) console.error(line);
  process.exitCode = 1;
} finally {
  await browser.close();
  if (server.exitCode === null) await stopServer(server);
  rmSync(dataDir, { recursive: true, force: true });
}
