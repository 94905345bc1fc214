// WebSockets over HTTP/2 (RFC 8441) from Node's own http2 module against
// `volley echo` over TLS: three extended CONNECT streams on one connection,
// each echoing text and binary messages (masked client frames, up to 64 KiB)
// checked byte for byte.
// Usage: node h2_echo.mjs https://localhost:PORT --ca cert.pem
import http2 from 'node:http2';
import fs from 'node:fs';
import crypto from 'node:crypto';

const [url, , caPath] = process.argv.slice(2);
const session = http2.connect(url, { ca: fs.readFileSync(caPath) });
session.on('error', (e) => { console.error('session error', e); process.exit(1); });

function frame(opcode, payload) {
  const mask = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  let head;
  if (payload.length < 126) head = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  else if (payload.length < 65536) { head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(payload.length, 2); }
  else { head = Buffer.alloc(10); head[0] = 0x80 | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(payload.length), 2); }
  return Buffer.concat([head, mask, body]);
}

function reader(stream) {
  let buf = Buffer.alloc(0); const waiting = [];
  stream.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + len) return;
      const msg = { opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + len) };
      buf = buf.subarray(off + len);
      waiting.shift()(msg);
    }
  });
  return () => new Promise((r) => waiting.push(r));
}

function open() {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/', ':scheme': 'https',
      ':authority': new URL(url).host, 'sec-websocket-version': '13' });
    stream.on('response', (h) => h[':status'] === 200 ? resolve(stream) : reject(new Error(`status ${h[':status']}`)));
    stream.on('error', reject);
  });
}

const streams = await Promise.all([open(), open(), open()]);
await Promise.all(streams.map(async (stream, n) => {
  const next = reader(stream);
  for (const size of [0, 1, 125, 126, 4096, 65535, 65536]) {
    for (const opcode of [0x1, 0x2]) {
      const payload = opcode === 0x1 ? Buffer.from('é'.repeat(size >> 1) + (size & 1 ? 'x' : ''), 'utf8') : crypto.randomBytes(size);
      const got = next();
      stream.write(frame(opcode, payload));
      const echo = await got;
      if (echo.opcode !== opcode || !echo.payload.equals(payload)) throw new Error(`stream ${n}: ${size} bytes came back wrong`);
    }
  }
}));
console.log('3 streams x 14 messages echoed byte for byte over one HTTP/2 connection');
for (const s of streams) s.close();
session.close();
