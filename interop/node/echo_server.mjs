// Echo server on the Node.js `ws` package, for volley's client.
// usage: node echo_server.mjs PORT [--cert CERT.pem --key KEY.pem]
// Accepts permessage-deflate when the client offers it.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const port = Number(args[0]);
const certIndex = args.indexOf('--cert');
const keyIndex = args.indexOf('--key');
const options = { perMessageDeflate: { threshold: 0 }, maxPayload: 0 };

let wss;
if (certIndex >= 0) {
  const server = createServer({ cert: readFileSync(args[certIndex + 1]), key: readFileSync(args[keyIndex + 1]) });
  wss = new WebSocketServer({ server, ...options });
  server.listen(port, '127.0.0.1');
} else {
  wss = new WebSocketServer({ port, host: '127.0.0.1', ...options });
}
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
