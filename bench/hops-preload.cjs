// Preloaded by bench/hops.ts into every process of its run (the measuring client, the upstream,
// the relay, the gateway; never into the gateway itself otherwise): one line per moment below to
// the file HOPS_LOG, `<µs> <pid> <HOPS_NAME> <moment> <path>`, the time from the monotonic clock
// every process on the machine shares (process.hrtime), so that moments in different processes
// compare. Written synchronously (a few µs each): the order is the order they happened in.
//   S-in   a server's request emitted by Node's HTTP server (POST only)
//   S-out  that request's first response bytes handed to the socket
//   C-w    a client request's bytes handed to its socket (its path)
//   C-d    a client response's first body bytes in (its path)
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');

const file = process.env.HOPS_LOG;
if (file) {
  const fd = fs.openSync(file, 'a');
  const name = process.env.HOPS_NAME || 'node';
  const log = (moment, path = '-') => fs.writeSync(fd, `${process.hrtime.bigint() / 1000n} ${process.pid} ${name} ${moment} ${path}\n`);
  // The driver's own marks (bench/hops.ts): which request of the log is measured, and for which target.
  module.exports = { mark: log };

  const serverEmit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (event, req, res) {
    if (event === 'request' && req.method === 'POST') {
      log('S-in', req.url);
      if (res.socket) res.socket.hopsAnswering = true;
    }
    return serverEmit.apply(this, arguments);
  };

  // A client request's first write starts with its request line: `POST <path> HTTP/1.1`.
  const requestLine = (text) => /^POST (\S+) HTTP/.exec(text())?.[1];
  const mark = (socket, text) => {
    if (socket.hopsAnswering) {
      socket.hopsAnswering = false;
      log('S-out');
    }
    if (socket.hopsRequesting) {
      const path = requestLine(text);
      if (path) log('C-w', path);
    }
  };
  const latin1 = (chunk) => (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('latin1', 0, 200));
  const writev = net.Socket.prototype._writev;
  net.Socket.prototype._writev = function (chunks, cb) {
    mark(this, () => chunks.map((c) => latin1(c.chunk)).join(''));
    return writev.call(this, chunks, cb);
  };
  const write = net.Socket.prototype._write;
  net.Socket.prototype._write = function (chunk, encoding, cb) {
    mark(this, () => latin1(chunk));
    return write.call(this, chunk, encoding, cb);
  };

  const onSocket = http.ClientRequest.prototype.onSocket;
  http.ClientRequest.prototype.onSocket = function (socket, err) {
    if (socket) socket.hopsRequesting = true;
    return onSocket.call(this, socket, err);
  };
  const clientEmit = http.ClientRequest.prototype.emit;
  http.ClientRequest.prototype.emit = function (event, res) {
    if (event === 'response') res.hopsPath = this.path;
    return clientEmit.apply(this, arguments);
  };
  const push = http.IncomingMessage.prototype.push;
  http.IncomingMessage.prototype.push = function (chunk, encoding) {
    if (this.hopsPath && chunk) {
      log('C-d', this.hopsPath);
      this.hopsPath = undefined;
    }
    return push.call(this, chunk, encoding);
  };
}
