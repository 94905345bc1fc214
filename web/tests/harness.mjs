// What the browser end-to-end tests share: a free port, `volley serve`
// started and stopped, headless Chromium, and checks.
import { spawn } from "node:child_process";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

export const bin = process.env.VOLLEY_BIN || "target/debug/volley";
export const timeout = 15000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/** Start `volley serve` on `port` with extra arguments; resolves once /readyz answers
 * (over `scheme`; with https the certificate is not checked: it is a fresh self-signed one). */
export async function startServer(port, dataDir, extra = [], scheme = "http") {
  const proc = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", dataDir, ...extra], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
  });
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    try {
      if (scheme === "https") {
        if (await httpsReady(port)) return proc;
      } else {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        if (res.ok) return proc;
      }
    } catch {}
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not become ready");
}

function httpsReady(port) {
  return new Promise((resolve) => {
    const req = httpsGet({ host: "127.0.0.1", port, path: "/readyz", rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
  });
}

/** SIGTERM; resolves with how the server exited. */
export function stopServer(proc) {
  return new Promise((resolve) => {
    proc.once("exit", (code, signal) => resolve({ code, signal }));
    proc.kill("SIGTERM");
  });
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
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
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
