// Compiled by `tsc --noEmit` only: the declarations cover what the tests
// and the pages use, with the types a caller expects.
import { VolleyChat, api, GameClient, KIND, type Ack, type Frame } from "../index.js";

async function chat(): Promise<number> {
  const { token } = await api<{ token: string }>("/api/guest", { method: "POST", body: { name: "t" }, base: "http://127.0.0.1:8080" });
  const client = new VolleyChat("ws://127.0.0.1:8080/ws", { token }).connect();
  const ack: Ack = await client.send(1, "hi");
  const page = await client.history(1, ack.seq, 10);
  return page.messages.length + (client.lastSeq.get(1) ?? 0);
}

function game(): Frame | null {
  const g = new GameClient("ws://127.0.0.1:8080/game/ws", { name: "t", interpolationTicks: 2 });
  g.addEventListener("welcome", () => g.input(1, 0, 0));
  const f = g.frame();
  if (f) for (const e of f.entities) if (e.kind === KIND.CELL && e.own) return f;
  return null;
}

export { chat, game };
