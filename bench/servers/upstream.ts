// The stand-in upstream: an OpenAI-compatible /v1/chat/completions on 127.0.0.1.
// JSON answers at once; streams send CHUNKS chunks GAP_MS apart, then usage and [DONE].
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
const chunk = (i: number) =>
  `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: 'tok0 ' } : { content: `tok${i} ` }, logprobs: null, finish_reason: i === CHUNKS - 1 ? 'stop' : null }] })}\n\n`;
const CHUNK_TEXT = Array.from({ length: CHUNKS }, (_, i) => chunk(i));
const TAIL = `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 12, completion_tokens: CHUNKS, total_tokens: 12 + CHUNKS } })}\n\ndata: [DONE]\n\n`;

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
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(COMPLETION) }).end(COMPLETION);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let i = 0;
    const send = () => {
      if (res.destroyed) return;
      res.write(CHUNK_TEXT[i++]);
      if (i < CHUNKS) setTimeout(send, GAP_MS);
      else res.end(TAIL);
    };
    send();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
