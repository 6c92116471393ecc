// Preloaded into the gateway's process by bench/trace.ts (never in the gateway itself): timestamps
// of one streamed request's four moments on the way to its first byte, taken at Node's own
// HTTP/socket layer, so that the gateway's code is measured unchanged:
//   a  the client's request emitted by the HTTP server
//   w  the upstream request's bytes handed to its socket (the path of the 300 ms model)
//   d  the upstream's first body bytes pushed to its response
//   e  the first body write to the client (headers leave with it: lambda/entry/local-server.ts)
// `before` = w − a (the gateway's work before the upstream call), `after` = e − d (from the
// upstream's first byte to the client's), `wait` = d − w (the upstream's 300 ms and the wire).
// The driver asks for the rows over IPC ({type: 'trace'}), which also clears them.
const http = require('node:http');
const net = require('node:net');
const { performance } = require('node:perf_hooks');

const UPSTREAM_PATH = process.env.TRACE_UPSTREAM_PATH || 'POST /delay/300/v1/chat';
const rows = [];
let current;

const serverEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request' && req.method === 'POST') {
    const row = (current = { a: performance.now() });
    rows.push(row);
    const write = res.write;
    res.write = function (...args) {
      if (row.e === undefined) row.e = performance.now();
      return write.apply(this, args);
    };
  }
  return serverEmit.apply(this, arguments);
};

// The upstream request's bytes as they reach the socket (Node writes a request in a nextTick).
// Stamped as the write begins, before its text is scanned (the scan of a 100,000-character body
// took about 0.8 ms, which `before` would otherwise include).
const seen = (at, text) => {
  if (current && current.w === undefined && text().includes(UPSTREAM_PATH)) current.w = at;
};
const writev = net.Socket.prototype._writev;
const write1 = net.Socket.prototype._write;
net.Socket.prototype._writev = function (chunks, cb) {
  seen(performance.now(), () => chunks.map((c) => (typeof c.chunk === 'string' ? c.chunk : Buffer.from(c.chunk).toString('latin1'))).join(''));
  return writev.call(this, chunks, cb);
};
net.Socket.prototype._write = function (chunk, encoding, cb) {
  seen(performance.now(), () => (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('latin1')));
  return write1.call(this, chunk, encoding, cb);
};

// The upstream's response: its first body chunk.
const clientEmit = http.ClientRequest.prototype.emit;
http.ClientRequest.prototype.emit = function (event, res) {
  if (event === 'response' && current && current.w !== undefined && current.d === undefined && (this.path || '').includes('/delay/300/')) res.__traceRow = current;
  return clientEmit.apply(this, arguments);
};
const push = http.IncomingMessage.prototype.push;
http.IncomingMessage.prototype.push = function (chunk, encoding) {
  const row = this.__traceRow;
  if (row && chunk && row.d === undefined) row.d = performance.now();
  return push.call(this, chunk, encoding);
};

process.on('message', (msg) => {
  if (msg && msg.type === 'trace') {
    const out = rows.splice(0).map((r) => ({ before: r.w - r.a, wait: r.d - r.w, after: r.e - r.d, total: r.e - r.a }));
    process.send({ type: 'trace', id: msg.id, rows: out });
  }
});
