// The game client against a real server: a player joins, snapshots decode
// against their baselines, frame() gives something to draw, inputs are
// acknowledged, and a spectator watches.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GameClient, KIND } from "../index.js";
import { startServer, next } from "./server.mjs";

test("a player joins, draws frames and steers; a spectator watches", async (t) => {
  const server = await startServer(t);
  const player = new GameClient(`${server.ws}/game/ws`, { name: "ada" });
  t.after(() => player.close());
  const welcome = await next(player, "welcome");
  assert.ok(welcome.player > 0);
  assert.equal(welcome.token.length, 16);
  for (let i = 0; i < 10; i++) await next(player, "snapshot");
  const frame = player.frame();
  assert.ok(frame, "a frame after snapshots");
  assert.ok(frame.entities.some((e) => e.own && e.kind === KIND.CELL), "the own cell is drawn");
  assert.ok(frame.entities.some((e) => e.kind === KIND.PELLET), "pellets around");
  // Steer: the server acknowledges the input sequence in later snapshots.
  player.input(100, 0);
  await next(player, "snapshot", (h) => h.inputSeq >= 1);

  const watcher = new GameClient(`${server.ws}/game/ws`, { name: "eve", spectate: true });
  t.after(() => watcher.close());
  const seen = await next(watcher, "welcome");
  assert.equal(seen.spectator, true);
  await next(watcher, "snapshot");
});

test("a signed-in player plays under its account, takes its seat back, and a bad token stops the client", async (t) => {
  const server = await startServer(t);
  const res = await fetch(`${server.http}/api/guest`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "grace" }),
  });
  const { token } = await res.json();
  const first = new GameClient(`${server.ws}/game/ws`, { name: "ignored", account: token });
  t.after(() => first.close());
  const welcome = await next(first, "welcome");
  const roster = await next(first, "roster", (r) => r.has(welcome.player));
  assert.deepEqual(
    { name: roster.get(welcome.player).name, account: roster.get(welcome.player).account },
    { name: "grace", account: true },
  );
  // The same account from a second client, with no resume token: its seat.
  const second = new GameClient(`${server.ws}/game/ws`, { account: token });
  t.after(() => second.close());
  const again = await next(second, "welcome");
  assert.equal(again.player, welcome.player);
  assert.equal(again.resumed, true);

  const forged = new GameClient(`${server.ws}/game/ws`, { account: "forged" });
  t.after(() => forged.close());
  const gone = await next(forged, "disconnect");
  assert.equal(gone.code, 4005);
  assert.equal(forged.state, "closed");
});
