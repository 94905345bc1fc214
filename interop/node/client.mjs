// Interop client on the Node.js `ws` package: a fixed exchange with an echo
// server, every echo checked byte for byte, then the close code.
// usage: node client.mjs URL [--deflate] [--ca CERT.pem]

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const url = args[0];
const deflate = args.includes('--deflate');
const caIndex = args.indexOf('--ca');
const ca = caIndex >= 0 ? readFileSync(args[caIndex + 1]) : undefined;

function fail(why) {
  console.log(`FAIL: ${why}`);
  process.exit(1);
}

const ws = new WebSocket(url, { perMessageDeflate: deflate, ca, maxPayload: 0 });
const received = [];
let waiter = null;
ws.on('message', (data, isBinary) => {
  received.push({ data: Buffer.from(data), isBinary });
  if (waiter) { const w = waiter; waiter = null; w(); }
});
ws.on('error', (e) => fail(e.message));

function next() {
  return new Promise((resolve) => {
    if (received.length) return resolve(received.shift());
    waiter = () => resolve(received.shift());
  });
}

ws.on('open', async () => {
  const negotiated = (ws.extensions || '').includes('permessage-deflate');
  if (negotiated !== deflate) fail(`permessage-deflate negotiated: ${negotiated}, wanted ${deflate}`);
  const messages = [
    { data: Buffer.from('hello interop ✓'), isBinary: false },
    { data: Buffer.from([...Array(256).keys()]), isBinary: true },
    { data: Buffer.from('compressible text '.repeat(12000)), isBinary: false },
    { data: randomBytes(1 << 20), isBinary: true },
    { data: Buffer.alloc(0), isBinary: false },
  ];
  for (const m of messages) {
    ws.send(m.data, { binary: m.isBinary });
    const echo = await next();
    if (echo.isBinary !== m.isBinary || !echo.data.equals(m.data)) {
      fail(`echo of a ${m.data.length}-byte ${m.isBinary ? 'binary' : 'text'} message differs`);
    }
  }
  // A fragmented text message, sent frame by frame without compression.
  ws.send('frag one, ', { fin: false, compress: false });
  ws.send('frag two, ', { fin: false, compress: false });
  ws.send('frag three ✓', { fin: true, compress: false });
  const echo = await next();
  if (echo.isBinary || echo.data.toString() !== 'frag one, frag two, frag three ✓') {
    fail(`fragmented echo differs: ${echo.data.toString()}`);
  }
  ws.on('close', (code) => {
    if (code !== 4000) fail(`expected close code 4000 echoed, got ${code}`);
    console.log(`ok: node ws client -> ${url} (deflate ${deflate})`);
    process.exit(0);
  });
  ws.close(4000, 'bye');
});
