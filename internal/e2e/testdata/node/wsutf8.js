// A real WebSocket client (the ws package) for keyhole's UTF-8 tests.
// Usage: node wsutf8.js <ws-url> <proxy-host:port>
// Sends a valid text message in two fragments split inside a character,
// waits for its echo, then a text message whose second fragment is not
// UTF-8, and prints the echo and the close it got as JSON.
'use strict';
const WebSocket = require('ws');

const [url, proxyAddr] = process.argv.slice(2);
const [proxyHost, proxyPort] = proxyAddr.split(':');
const lookup = (hostname, options, cb) => {
  if (options && options.all) cb(null, [{ address: proxyHost, family: 4 }]);
  else cb(null, proxyHost, 4);
};
const ws = new WebSocket(url, { lookup, port: proxyPort, perMessageDeflate: false });
const valid = Buffer.from('κόσμε ✓', 'utf8');
const seen = { echo: null, close: null };
ws.on('open', () => {
  ws.send(valid.subarray(0, 1), { binary: false, fin: false });
  ws.send(valid.subarray(1), { binary: false, fin: true });
});
ws.on('message', (data, isBinary) => {
  seen.echo = { binary: isBinary, hex: Buffer.from(data).toString('hex') };
  ws.send(Buffer.from('ok '), { binary: false, fin: false });
  ws.send(Buffer.from([0xed, 0xa0, 0x80]), { binary: false, fin: true });
});
ws.on('close', (code, reason) => {
  seen.close = { code, reason: reason.toString() };
  console.log(JSON.stringify(seen));
  process.exit(0);
});
ws.on('error', (e) => {
  console.log(JSON.stringify({ error: String(e), seen }));
  process.exit(1);
});
setTimeout(() => {
  console.log(JSON.stringify({ error: 'timeout', seen }));
  process.exit(1);
}, 10000);
