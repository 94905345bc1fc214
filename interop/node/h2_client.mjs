// WebSockets over HTTP/2 (RFC 8441) from Node's own http2 module against
// `volley serve` over TLS: two extended CONNECT streams on one connection,
// the chat's /ws (guest auth, expects `ready`) and the game's /game/ws (a
// binary ping, expects the pong with the same id), checked byte for byte.
// Usage: node h2_client.mjs https://localhost:PORT --ca cert.pem
import http2 from 'node:http2';
import fs from 'node:fs';

const [url, , caPath] = process.argv.slice(2);
const session = http2.connect(url, { ca: fs.readFileSync(caPath) });
session.on('error', (e) => { console.error('session error', e); process.exit(1); });

let enabled = false;
session.on('remoteSettings', (s) => { enabled = s.enableConnectProtocol === true; });

function frame(opcode, payload) {
  // A client frame: FIN, masked, length < 126.
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, body]);
}

// Read unmasked server frames from a stream; resolves with the first whose
// payload satisfies `want`.
function until(stream, want) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    stream.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f, off = 2;
        if (buf[1] & 0x80) return reject(new Error('a server frame is masked'));
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const opcode = buf[0] & 0x0f, payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (want(opcode, payload)) return resolve(payload);
      }
    });
    stream.on('error', reject);
    stream.on('close', () => reject(new Error('stream closed early')));
  });
}

function open(path) {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':path': path,
      ':scheme': 'https', ':authority': new URL(url).host, 'sec-websocket-version': '13',
    });
    stream.on('response', (h) => h[':status'] === 200 ? resolve(stream) : reject(new Error(`status ${h[':status']}`)));
    stream.on('error', reject);
  });
}

await new Promise((r) => session.once('remoteSettings', r));
if (!enabled) { console.error('SETTINGS_ENABLE_CONNECT_PROTOCOL is not set'); process.exit(1); }
const [chat, game] = await Promise.all([open('/ws'), open('/game/ws')]);

chat.write(frame(0x1, Buffer.from(JSON.stringify({ type: 'auth', guest: 'node-h2' }))));
const ready = JSON.parse((await until(chat, (op, p) => op === 0x1 && p.includes('"ready"'))).toString());
if (ready.user.name !== 'node-h2') throw new Error(`ready for ${ready.user.name}`);

const ping = Buffer.from([0x03, 0x2a, 0x00, 0x00, 0x00]); // game ping, id 42
game.write(frame(0x2, ping));
const pong = await until(game, (op, p) => op === 0x2 && p[0] === 0x83);
if (!pong.equals(Buffer.from([0x83, 0x2a, 0x00, 0x00, 0x00]))) throw new Error(`pong ${pong.toString('hex')}`);

console.log('chat ready and game pong over two streams of one HTTP/2 connection');
chat.close(); game.close(); session.close();
