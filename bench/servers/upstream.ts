// The stand-in upstream: an OpenAI-compatible /v1/chat/completions on 127.0.0.1.
// JSON answers at once; streams send CHUNKS chunks GAP_MS apart, then usage and [DONE].
// A path prefix shapes the answer (routes and base URLs carry it, so every target sees the same):
//   /delay/<ms>/v1/…               waits that long before its first byte (a provider's time to first token)
//   /stream/<chunks>x<gapMs>/v1/…  a stream of that many chunks that far apart (a 20 s answer: /stream/1000x20)
// Both may be combined: /delay/1000/stream/1000x20/v1/chat/completions.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { CHUNKS, GAP_MS } from './upstream-shape';

const COMPLETION = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1735689600,
  model: 'bench-upstream',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello! How can I help you today?', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 },
});

const base = { id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1735689600, model: 'bench-upstream' };
const chunk = (i: number, last: boolean) =>
  `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: 'tok0 ' } : { content: `tok${i} ` }, logprobs: null, finish_reason: last ? 'stop' : null }] })}\n\n`;
const chunkText = (n: number) => Array.from({ length: n }, (_, i) => chunk(i, i === n - 1));
const tail = (n: number) => `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 12, completion_tokens: n, total_tokens: 12 + n } })}\n\ndata: [DONE]\n\n`;
const shapes = new Map<number, { chunks: string[]; tail: string }>();
const shape = (n: number) => {
  let s = shapes.get(n);
  if (!s) shapes.set(n, (s = { chunks: chunkText(n), tail: tail(n) }));
  return s;
};

/** The answer's shape from the path's prefix (see the top of this file). */
function shapeOf(path: string): { delayMs: number; chunks: number; gapMs: number } {
  const delay = /\/delay\/(\d+)(?=\/)/.exec(path);
  const stream = /\/stream\/(\d+)x(\d+)(?=\/)/.exec(path);
  return { delayMs: delay ? Number(delay[1]) : 0, chunks: stream ? Math.max(2, Number(stream[1])) : CHUNKS, gapMs: stream ? Number(stream[2]) : GAP_MS };
}

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    let stream = false;
    try {
      stream = JSON.parse(Buffer.concat(parts).toString('utf8')).stream === true;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"bad json","type":"invalid_request_error","param":null,"code":null}}');
      return;
    }
    const { delayMs, chunks, gapMs } = shapeOf(req.url ?? '');
    const answer = () => {
      if (!stream) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(COMPLETION) }).end(COMPLETION);
        return;
      }
      const { chunks: text, tail: end } = shape(chunks);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let i = 0;
      const send = () => {
        if (res.destroyed) return;
        res.write(text[i++]);
        if (i < chunks) setTimeout(send, gapMs);
        else res.end(end);
      };
      send();
    };
    if (delayMs) answerAt(performance.now() + delayMs, answer);
    else answer();
  });
});
/**
 * Runs `answer` when `at` (performance.now()) comes, to a few hundredths of a millisecond: a timer
 * to about 2 ms before, then turns of the event loop. A plain 300 ms timer fires anywhere in the
 * millisecond after its time (libuv counts whole milliseconds), and every target's "added" is its
 * first byte less the upstream's own in a request of its own: that spread, twice over, was a
 * noise of its own in each difference (bench/ttfb.ts, bench/trace.ts).
 */
function answerAt(at: number, answer: () => void): void {
  const left = at - performance.now();
  if (left > 3) setTimeout(() => answerAt(at, answer), left - 2);
  else if (left > 0) setImmediate(() => answerAt(at, answer));
  else answer();
}

server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
