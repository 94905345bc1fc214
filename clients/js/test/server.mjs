// A real `volley serve` for the package's tests: on a free port, in a
// temporary directory, stopped when the test ends. VOLLEY_BIN names the
// binary (default: the workspace's debug build).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const BIN = process.env.VOLLEY_BIN || resolve(import.meta.dirname, "../../../target/debug/volley");

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function listening(port) {
  return new Promise((ok) => {
    const c = connect(port, "127.0.0.1");
    c.on("connect", () => { c.destroy(); ok(true); });
    c.on("error", () => ok(false));
  });
}

/** Start a node; returns {http, ws, stop}. */
export async function startServer(t) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "volley-js-"));
  const child = spawn(BIN, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", dir, "--max-connections-per-ip", "0"], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const deadline = Date.now() + 30_000;
  while (!(await listening(port))) {
    if (Date.now() > deadline) throw new Error(`volley serve never listened on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = () => { child.kill(); rmSync(dir, { recursive: true, force: true }); };
  t.after(stop);
  return { http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}`, child, stop };
}

/** The next `type` event of `target` (10 s at most), optionally the first that `pick` accepts. */
export function next(target, type, pick = () => true) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no ${type} event`)), 10_000);
    const on = (ev) => {
      if (!pick(ev.detail)) return;
      clearTimeout(timer);
      target.removeEventListener(type, on);
      ok(ev.detail);
    };
    target.addEventListener(type, on);
  });
}
