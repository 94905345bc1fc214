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
