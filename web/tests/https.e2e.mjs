// Chromium over HTTPS against `volley serve --self-signed`: the chat page
// loads over TLS, a guest logs in and a message goes round, and the test
// reports which protocol carried the page (HTTP/2 or HTTP/3, from the
// Navigation Timing entry) and which one carried the WebSocket (from the
// server's volley_websocket_upgrades_total{transport}).
//
// Three browser runs: one as a user's would be; one with QUIC forced for
// this origin (--origin-to-force-quic-on: a browser uses HTTP/3 only after
// it learned of it, and a fresh test profile has not); and one with QUIC
// forced and Chromium's EnableWebsocketsOverHttp3 feature. Self-signed
// certificates need --ignore-certificate-errors (TCP) and, for QUIC, the
// certificate's SPKI hash.
//
// Usage: VOLLEY_BIN=target/debug/volley node https.e2e.mjs
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { check, freePort, startServer, stopServer, timeout } from "./harness.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "volley-https-"));
const certPath = join(dataDir, "cert.pem");
const port = await freePort();
const base = `https://localhost:${port}/`;
let server;
const results = [];
try {
  server = await startServer(port, dataDir, ["--self-signed", "--self-signed-cert-out", certPath], "https");
  const cert = new X509Certificate(readFileSync(certPath));
  const spki = createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64");

  for (const [label, extra] of [
    ["default", []],
    ["QUIC forced", [`--origin-to-force-quic-on=localhost:${port}`]],
    // Chromium's own switch for RFC 9220 (off by default in Chromium 156).
    [
      "QUIC forced + EnableWebsocketsOverHttp3",
      [`--origin-to-force-quic-on=localhost:${port}`, "--enable-features=EnableWebsocketsOverHttp3"],
    ],
  ]) {
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--ignore-certificate-errors",
        `--ignore-certificate-errors-spki-list=${spki}`,
        // The server listens on 127.0.0.1 only; QUIC does not fall back from ::1.
        "--host-resolver-rules=MAP localhost 127.0.0.1",
        ...extra,
      ],
    });
    try {
      const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
      page.setDefaultTimeout(timeout);
      const upgrades = async () => {
        const text = await page.evaluate(async () => (await fetch("/metrics")).text());
        const count = (t) => Number((text.match(new RegExp(`volley_websocket_upgrades_total\\{transport="${t}"\\} (\\d+)`)) || [])[1] || 0);
        return { "http/1.1": count("http/1.1"), h2: count("h2"), h3: count("h3") };
      };
      await page.goto(base);
      const before = await upgrades();
      await page.fill("#username", `guest-${results.length}`);
      await page.click("#guest-button");
      await page.waitForSelector('#conn[data-state="open"]');
      await page.fill("#new-room-name", `https ${label}`);
      await page.click("#new-room button");
      await page.waitForSelector("#rooms li.active");
      await page.fill("#text", `hello over ${label}`);
      await page.click("#send");
      await page.waitForSelector(`#messages li:has-text("hello over ${label}")`);
      const after = await upgrades();
      const ws = Object.keys(after).filter((t) => after[t] > before[t]);
      const pageProtocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.nextHopProtocol);
      check(ws.length === 1, `one WebSocket opened (saw ${JSON.stringify(after)} after ${JSON.stringify(before)})`);
      results.push({ run: label, page: pageProtocol, websocket: ws[0] });
    } finally {
      await browser.close();
    }
  }
  for (const r of results) console.log(`chromium ${r.run}: page over ${r.page}, chat WebSocket over ${r.websocket}; chat works`);
  // What Chromium 156 does (Debian's package): RFC 8441 on the page's HTTP/2
  // connection by default, RFC 9220 once QUIC is known and the feature is on.
  check(results[0].websocket === "h2", "Chromium opens the chat WebSocket over HTTP/2 by default");
  check(results[1].page === "h3", "the page loads over HTTP/3 when QUIC is forced");
  check(results[2].page === "h3" && results[2].websocket === "h3", "with EnableWebsocketsOverHttp3 the WebSocket runs over HTTP/3");
} finally {
  if (server) await stopServer(server);
  rmSync(dataDir, { recursive: true, force: true });
}
