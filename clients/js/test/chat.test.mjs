// The chat client against a real server: guest accounts through the JSON
// API, two clients in a room, messages acknowledged and delivered, history,
// and a dropped connection that resumes without losing a message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { VolleyChat, api } from "../index.js";
import { startServer, next } from "./server.mjs";

test("two clients chat, one drops and resumes without losing a message", async (t) => {
  const server = await startServer(t);
  const guest = async (name) => (await api("/api/guest", { method: "POST", body: { name }, base: server.http })).token;
  const ada = new VolleyChat(`${server.ws}/ws`, { token: await guest("ada") });
  const bob = new VolleyChat(`${server.ws}/ws`, { token: await guest("bob") });
  t.after(() => { ada.close(); bob.close(); });
  const ready = Promise.all([next(ada, "ready"), next(bob, "ready")]);
  ada.connect(); bob.connect();
  await ready;
  assert.equal(ada.state, "open");

  const { room: id } = await ada.createRoom("js");
  const room = { id };
  await bob.join(id);
  const heard = next(bob, "message", (m) => m.text === "hello");
  const ack = await ada.send(room.id, "hello");
  assert.equal(ack.seq, 1);
  assert.equal((await heard).name, "ada");

  const page = await bob.history(room.id);
  assert.deepEqual(page.messages.map((m) => m.text), ["hello"]);

  // Bob's connection drops; Ada speaks meanwhile; Bob resumes from seq 1
  // and gets exactly the message he missed.
  const back = next(bob, "ready");
  const missed = next(bob, "message", (m) => m.text === "while you were away");
  bob.ws.close();
  await next(bob, "state", (s) => s.state === "reconnecting");
  await ada.send(room.id, "while you were away");
  await back;
  assert.equal((await missed).seq, 2);
  assert.equal(bob.lastSeq.get(room.id), 2);
});

test("a refused login is an error, not a retry loop", async (t) => {
  const server = await startServer(t);
  const eve = new VolleyChat(`${server.ws}/ws`, { token: "not-a-token" });
  t.after(() => eve.close());
  const closed = next(eve, "state", (s) => s.state === "closed");
  eve.connect();
  const { code } = await closed;
  assert.equal(code, 1008);
});
