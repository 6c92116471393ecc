// Issue 22: an SSE answer is written to the socket by the entry itself (local mode and Lambda),
// without its Web stream built, pulled and read on the way to the first byte; anything that reads
// the Response's body (Hono's test client, middleware) still gets the same bytes as a Web stream.
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { SseBody, sseBody, sseResponse, takeSseBody, type SseSource } from '../../lambda/chat/sse-body';
import { streamingRuntime, writeResponse } from '../../lambda/entry/lambda-http';
import { writeSseToNode } from '../../lambda/entry/sse-write';
import { installAwsLambdaGlobal, ResponseStreamRecorder } from '../support/awslambda-standin';

const HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': 'req_1' };
const terminals = { ended: () => [{ data: '[DONE]', raw: true }], failed: () => [{ data: '{"error":{}}', raw: true }] };
const EXPECTED = 'data: one\n\ndata: two\n\ndata: [DONE]\n\n';

/** Items given one by one; after `hold` items, the next read waits until the body is cancelled (an upstream gone silent). */
function items(values: string[], hold = Infinity): SseSource<string> & { returned: Promise<void> } {
  let i = 0;
  let wake: (() => void) | undefined;
  let cancelled = false;
  let markReturned!: () => void;
  const returned = new Promise<void>((resolve) => (markReturned = resolve));
  return {
    returned,
    async next() {
      if (i >= hold && !cancelled) await new Promise<void>((resolve) => (wake = resolve));
      if (cancelled || i >= values.length) return { done: true, value: undefined };
      return { done: false, value: values[i++] };
    },
    async return() {
      cancelled = true;
      wake?.();
      markReturned();
      return { done: true, value: undefined };
    },
  };
}

const body = (source: SseSource<string> = items(['one', 'two'])) => sseBody(source, (value) => [{ data: value, raw: true }], terminals);

async function drain(sse: { next(): Promise<Uint8Array | undefined> }): Promise<string> {
  let text = '';
  for (let bytes = await sse.next(); bytes !== undefined; bytes = await sse.next()) text += Buffer.from(bytes).toString('utf8');
  return text;
}

describe('an SSE answer (sseResponse)', () => {
  it('gives a direct write the same bytes as its Web body', async () => {
    expect(await sseResponse(body(), { status: 200, headers: HEADERS }).text()).toBe(EXPECTED);
    const taken = takeSseBody(sseResponse(body(), { status: 200, headers: HEADERS }));
    expect(taken).toMatchObject({ status: 200, headers: HEADERS });
    expect(await drain(taken!.body)).toBe(EXPECTED);
  });

  it('is taken once, and never once its Web body was asked for', async () => {
    const read = sseResponse(body(), { status: 200, headers: HEADERS });
    expect(read.body).not.toBeNull();
    expect(takeSseBody(read)).toBeUndefined();
    expect(await read.text()).toBe(EXPECTED);

    const taken = sseResponse(body(), { status: 200, headers: HEADERS });
    expect(takeSseBody(taken)).toBeDefined();
    expect(takeSseBody(taken)).toBeUndefined();
    // Nothing is read twice: the Web body of a taken answer is empty.
    expect(taken.body).toBeNull();
  });

  it('hands over its headers as given, or as a middleware changed them', () => {
    expect(takeSseBody(sseResponse(body(), { status: 200, headers: HEADERS }))!.headers).toEqual(HEADERS);
    const changed = sseResponse(body(), { status: 200, headers: HEADERS });
    changed.headers.set('x-added', 'yes');
    changed.headers.delete('cache-control');
    const { 'cache-control': _dropped, ...kept } = HEADERS;
    expect(takeSseBody(changed)!.headers).toEqual({ ...kept, 'x-added': 'yes' });
  });

  it('reads none of its headers until someone asks for them (no Headers built on the way to the first byte)', () => {
    let reads = 0;
    const counted = new Proxy(HEADERS, {
      ownKeys: (target) => (reads++, Reflect.ownKeys(target)),
      get: (target, name) => (reads++, Reflect.get(target, name)),
    });
    const response = sseResponse(body(), { status: 200, headers: counted });
    expect(reads).toBe(0);
    const taken = takeSseBody(response)!;
    expect(taken.headers).toBe(counted);
    expect(reads).toBe(0);
    // Asked for, they are all there, in their order.
    const asked = sseResponse(body(), { status: 200, headers: HEADERS });
    expect([...asked.headers.keys()]).toEqual(Object.keys(HEADERS).sort());
    expect(Object.fromEntries(asked.headers)).toEqual(HEADERS);
  });

  it('is an answer like any other to whoever does not take it', async () => {
    const response = sseResponse(body(), { status: 200, headers: HEADERS });
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(HEADERS['content-type']);
    expect(await response.clone().text()).toBe(EXPECTED);
    expect(takeSseBody(new Response('plain'))).toBeUndefined();
  });

  it('goes the usual way when a middleware gave it a cookie (written as it is there)', async () => {
    const withCookie = sseResponse(body(), { status: 200, headers: HEADERS });
    withCookie.headers.append('set-cookie', 'a=1; Secure');
    expect(takeSseBody(withCookie)).toBeUndefined();
    expect(await withCookie.text()).toBe(EXPECTED);
  });
});

describe('written by local mode to Node’s response (writeSseToNode)', () => {
  let server: Server;
  let url: string;
  let next: SseSource<string>;
  /** When set, the answer is written only once the client has gone (as when it leaves while the upstream is called). */
  let afterClientLeft = false;
  /** The last request's writer (it must settle, whatever the client did) and its response. */
  let written: Promise<{ headersSent: boolean }>;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      written = new Promise((resolve) => {
        const write = () => void writeSseToNode(takeSseBody(sseResponse(body(next), { status: 200, headers: HEADERS }))!, res).then(() => resolve({ headersSent: res.headersSent }));
        if (afterClientLeft) res.once('close', write);
        else write();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const get = () => new Promise<IncomingMessage>((resolve, reject) => request(url, resolve).on('error', reject).end());

  it('writes the status, the headers and every frame, and ends', async () => {
    const stream = jest.spyOn(SseBody.prototype, 'stream');
    try {
      next = items(['one', 'two']);
      const res = await get();
      expect(res.statusCode).toBe(200);
      expect(res.headers).toMatchObject(HEADERS);
      let text = '';
      for await (const part of res) text += part;
      expect(text).toBe(EXPECTED);
      expect(stream).not.toHaveBeenCalled();
    } finally {
      stream.mockRestore();
    }
  });

  it('cancels the body at once when the client goes away while the upstream is silent', async () => {
    const source = items(['one', 'two'], 1);
    next = source;
    const res = await get();
    const first = await new Promise<string>((resolve) => res.once('data', (d: Buffer) => resolve(d.toString('utf8'))));
    expect(first).toBe('data: one\n\n');
    res.destroy();
    // The second item never comes: only the client's going away can end the wait.
    await source.returned;
    await written;
  });

  it('cancels the body, writing nothing, when the client left before the answer was ready', async () => {
    const source = items(['one', 'two'], 0);
    next = source;
    afterClientLeft = true;
    try {
      const req = request(url).on('error', () => undefined);
      req.end();
      await new Promise((resolve) => setTimeout(resolve, 50));
      req.destroy();
      // No item ever comes and no close is emitted after the answer is handed over: only the check at its start ends it.
      await source.returned;
      expect(await written).toEqual({ headersSent: false });
    } finally {
      afterClientLeft = false;
    }
  });
});

describe('written by the Lambda entry to the response stream (writeResponse)', () => {
  beforeAll(() => installAwsLambdaGlobal());

  it('cancels the body and fails when the response stream fails mid-answer (the client went away)', async () => {
    const source = items(['one', 'two', 'three']);
    let bodyWrites = 0;
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        // The prelude and its 8-byte delimiter, then the first frame; the second frame's write fails.
        if (chunk.length !== 8 && !chunk.toString('utf8').startsWith('{"statusCode"') && ++bodyWrites > 1) return callback(new Error('client went away'));
        callback();
      },
    });
    out.on('error', () => undefined);
    await expect(writeResponse(streamingRuntime(), out, sseResponse(body(source), { status: 200, headers: HEADERS }))).rejects.toThrow();
    await source.returned;
  });

  it('cancels the body at once and fails when the response stream closes while the upstream is silent', async () => {
    const source = items(['one', 'two'], 1);
    const out = new ResponseStreamRecorder();
    const written = writeResponse(streamingRuntime(), out, sseResponse(body(source), { status: 200, headers: HEADERS }));
    written.catch(() => undefined);
    await new Promise<void>((resolve) => {
      const poll = () => (out.parse().body === 'data: one\n\n' ? resolve() : setTimeout(poll, 5));
      poll();
    });
    out.destroy();
    // The second item never comes: only the stream's closing can end the wait.
    await source.returned;
    await expect(written).rejects.toThrow(/went away/);
  });

  it('waits for a stream that does not keep up, and hands over every byte in order', async () => {
    const values = Array.from({ length: 200 }, (_, i) => `${i}`.repeat(400));
    let writes = 0;
    let mostBuffered = 0;
    const chunks: Buffer[] = [];
    const out = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        mostBuffered = Math.max(mostBuffered, out.writableLength);
        // Every write completes a little later, as a slow client's would: the stream's buffer fills.
        setTimeout(callback, ++writes % 20 === 0 ? 2 : 0);
      },
    });
    const drains = jest.fn();
    out.on('drain', drains);
    await writeResponse(streamingRuntime(), out, sseResponse(body(items(values)), { status: 200, headers: HEADERS }));
    const text = Buffer.concat(chunks).toString('utf8');
    expect(text.slice(text.indexOf('data: '))).toBe(values.map((v) => `data: ${v}\n\n`).join('') + 'data: [DONE]\n\n');
    expect(out.writableFinished).toBe(true);
    expect(drains.mock.calls.length).toBeGreaterThan(10);
    // Never more than the buffer's mark and one frame waiting: the writer stopped at each full buffer.
    expect(mostBuffered).toBeLessThan(1024 + 500);
  });

  it('returns only once the runtime’s stream has flushed, though that stream is a thin wrapper over the real one', async () => {
    // As the Node.js runtime hands the handler its stream: the Writable's methods bound to it, its
    // state as read-only properties (so `finished()` taken after `end()` sees it done at once).
    let flush!: () => void;
    const inner = new Writable({
      write: (_chunk, _encoding, callback) => callback(),
      final: (callback) => (flush = () => callback()),
    });
    const wrapper: Record<string, unknown> = Object.fromEntries(
      ['cork', 'destroy', 'end', 'uncork', 'write', 'emit', 'off', 'on', 'once', 'prependListener', 'removeListener', 'removeAllListeners', 'listenerCount'].map((fn) => [
        fn,
        (inner as unknown as Record<string, (...args: unknown[]) => unknown>)[fn].bind(inner),
      ]),
    );
    for (const prop of ['destroyed', 'writable', 'writableFinished', 'writableEnded', 'writableNeedDrain', 'writableLength', 'writableHighWaterMark', 'writableObjectMode']) {
      Object.defineProperty(wrapper, prop, { get: () => (inner as unknown as Record<string, unknown>)[prop] });
    }
    let returned = false;
    const written = writeResponse(streamingRuntime(), wrapper as unknown as Writable, sseResponse(body(), { status: 200, headers: HEADERS })).then(() => (returned = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(inner.writableEnded).toBe(true);
    expect(returned).toBe(false);
    flush();
    await written;
    expect(inner.writableFinished).toBe(true);
  });

  it('writes the prelude and every frame without building the Web stream', async () => {
    const stream = jest.spyOn(SseBody.prototype, 'stream');
    try {
      const out = new ResponseStreamRecorder();
      await writeResponse(streamingRuntime(), out, sseResponse(body(), { status: 200, headers: HEADERS }));
      await out.finished;
      const { prelude, body: text } = out.parse();
      expect(prelude).toMatchObject({ statusCode: 200, headers: HEADERS, cookies: [] });
      expect(text).toBe(EXPECTED);
      expect(stream).not.toHaveBeenCalled();
    } finally {
      stream.mockRestore();
    }
  });
});
