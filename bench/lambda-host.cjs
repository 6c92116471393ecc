// The chat function's bundle as Lambda runs it, behind an HTTP port on loopback: plain `node` (no
// tsx) requires index.js under a stand-in for the runtime's `awslambda` global, and each HTTP
// request becomes a Function URL (payload 2.0) event. The handler writes the prelude (JSON, eight
// NUL bytes) and the body to its response stream, as to the runtime's; the host turns the prelude
// into the HTTP status and headers and sends the body on as it comes. Like the runtime, the
// client's answer ends when the response stream ends, while the handler may still run (settlement,
// the tokenizer after the first answer): that tail counts to the invocation, not to the client.
//
// LAMBDA_HANDLER_FILE: the bundle's index.js. Reports over IPC (bench/procs.ts, tests):
//   ready        {url, initMs, initCpuMs, loadedAtInit: files in require.cache, builtinsAtInit}
//   invocations  [{streamEndMs, streamEndCpuMs, handlerMs, cpuMs, tokenizer: {atStreamEnd, atHandlerEnd}}] since the last ask
//   drain        answered once no invocation is running
//   loaded       the files in require.cache now
'use strict';
const { performance } = require('node:perf_hooks');
const http = require('node:http');
const { Writable } = require('node:stream');
const { basename } = require('node:path');

const NUL8 = Buffer.alloc(8);

globalThis.awslambda = {
  streamifyResponse: (handler) => handler,
  HttpResponseStream: {
    from(stream, prelude) {
      stream.write(Buffer.from(JSON.stringify(prelude), 'utf8'));
      stream.write(NUL8);
      return stream;
    },
  },
};

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const loaded = () => Object.keys(require.cache);
const tokenizerLoaded = () => loaded().some((f) => /tokenizer(-cl100k)?\.js$/.test(basename(f)));

const builtinsBefore = new Set(process.moduleLoadList);
const cpu0 = cpu();
const t0 = performance.now();
const { handler } = require(process.env.LAMBDA_HANDLER_FILE);
const initMs = performance.now() - t0;
const initCpuMs = cpu() - cpu0;
const loadedAtInit = loaded();
const builtinsAtInit = process.moduleLoadList.filter((m) => !builtinsBefore.has(m) && m.startsWith('NativeModule '));

/** A response stream that hands the prelude to the HTTP response, then the body as it is written. */
class ResponseStream extends Writable {
  constructor(res) {
    super();
    this.res = res;
    this.head = Buffer.alloc(0);
    this.started = false;
  }
  _write(chunk, _enc, callback) {
    if (this.started) return this.res.write(chunk) ? callback() : this.res.once('drain', callback);
    this.head = Buffer.concat([this.head, chunk]);
    const at = this.head.indexOf(NUL8);
    if (at < 0) return callback();
    const prelude = JSON.parse(this.head.subarray(0, at).toString('utf8'));
    const headers = { ...prelude.headers };
    if (prelude.cookies?.length) headers['set-cookie'] = prelude.cookies;
    this.res.writeHead(prelude.statusCode, headers);
    this.started = true;
    const rest = this.head.subarray(at + 8);
    if (rest.length) this.res.write(rest);
    callback();
  }
  _final(callback) {
    this.res.end();
    callback();
  }
}

let records = [];
let running = 0;
const idle = [];

const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    const start = performance.now();
    const cpuStart = cpu();
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) headers[name] = Array.isArray(value) ? value.join(',') : value;
    const body = Buffer.concat(parts);
    const [rawPath, rawQueryString = ''] = req.url.split('?');
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString,
      headers: { ...headers, host: 'bench.lambda-url.us-east-1.on.aws' },
      requestContext: {
        accountId: '123456789012',
        apiId: 'bench',
        domainName: 'bench.lambda-url.us-east-1.on.aws',
        http: { method: req.method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
        requestId: `bench-${records.length}`,
        routeKey: '$default',
        stage: '$default',
        timeEpoch: Date.now(),
      },
      body: body.length ? body.toString('base64') : undefined,
      isBase64Encoded: true,
    };
    const record = { streamEndMs: NaN, streamEndCpuMs: NaN, handlerMs: NaN, cpuMs: NaN, tokenizer: { atStreamEnd: false, atHandlerEnd: false } };
    const stream = new ResponseStream(res);
    // A client that goes away destroys the stream with an error; the handler sees it through its own pipeline.
    stream.on('error', () => undefined);
    stream.once('finish', () => {
      record.streamEndMs = performance.now() - start;
      // The CPU the client waited on (to its last byte); what follows (settlement, metrics) is billed, not waited on.
      record.streamEndCpuMs = cpu() - cpuStart;
      record.tokenizer.atStreamEnd = tokenizerLoaded();
    });
    res.once('close', () => {
      if (!stream.writableFinished) stream.destroy(new Error('client went away'));
    });
    running++;
    Promise.resolve(handler(event, stream, { awsRequestId: event.requestContext.requestId }))
      .catch((err) => process.stderr.write(`handler failed: ${err?.stack ?? err}\n`))
      .finally(() => {
        record.handlerMs = performance.now() - start;
        // The process's CPU over the invocation: its own only when invocations run one at a time, as on Lambda.
        record.cpuMs = cpu() - cpuStart;
        record.tokenizer.atHandlerEnd = tokenizerLoaded();
        records.push(record);
        if (!stream.writableFinished && !res.writableEnded) res.end();
        if (--running === 0) while (idle.length) idle.shift()();
      });
  });
});
server.keepAliveTimeout = 60_000;

process.on('message', (msg) => {
  if (!msg || typeof msg !== 'object') return;
  const reply = (body) => process.send({ ...body, type: msg.type, id: msg.id });
  if (msg.type === 'invocations') {
    reply({ invocations: records });
    records = [];
  } else if (msg.type === 'drain') {
    if (running === 0) reply({});
    else idle.push(() => reply({}));
  } else if (msg.type === 'loaded') {
    reply({ loaded: loaded(), rssMb: process.memoryUsage().rss / 1048576 });
  }
});

server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${server.address().port}`, initMs, initCpuMs, loadedAtInit, builtinsAtInit, rssMb: process.memoryUsage().rss / 1048576 });
});
