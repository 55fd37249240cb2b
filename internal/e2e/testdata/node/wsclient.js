// A real WebSocket client (the ws package) for keyhole's end-to-end tests.
// Usage: node wsclient.js <ws-url> <proxy-host:port>
// Connects through the proxy, offers a subprotocol, sends a text and a
// binary message, closes with 4001, and prints what it saw as JSON.
'use strict';
const WebSocket = require('ws');

const [url, proxyAddr] = process.argv.slice(2);
const [proxyHost, proxyPort] = proxyAddr.split(':');
const lookup = (hostname, options, cb) => {
  // Every name resolves to the proxy, as *.localhost does in a browser.
  if (options && options.all) cb(null, [{ address: proxyHost, family: 4 }]);
  else cb(null, proxyHost, 4);
};
const ws = new WebSocket(url, ['chat.v1'], {
  lookup,
  port: proxyPort,
  origin: 'http://node.example',
  headers: { Cookie: 'who=node' },
  perMessageDeflate: false,
});
const seen = { protocol: null, messages: [], close: null };
const expected = 2;
ws.on('open', () => {
  seen.protocol = ws.protocol;
  ws.send('héllo from node ✓');
  ws.send(Buffer.from([0x00, 0xff, 0x01, 0xfe, 0xc3, 0x28]));
});
ws.on('message', (data, isBinary) => {
  seen.messages.push({ binary: isBinary, hex: Buffer.from(data).toString('hex') });
  if (seen.messages.length === expected) ws.close(4001, 'node says bye');
});
ws.on('close', (code, reason) => {
  seen.close = { code, reason: reason.toString() };
  console.log(JSON.stringify(seen));
  process.exit(0);
});
ws.on('error', (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});
setTimeout(() => {
  console.log(JSON.stringify({ error: 'timeout', seen }));
  process.exit(1);
}, 10000);
