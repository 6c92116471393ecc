import { GatewayError } from '../../lambda/contract/errors';
import type { ChatCompletionChunk } from '../../lambda/contract/openai';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { openAiCompatibleProvider } from '../../lambda/providers/openai-compatible';
import type { ProviderCall } from '../../lambda/providers/types';
import { validateChunk, validateCompletion } from '../support/openai-schema';
import { completionBody, startUpstream, streamEvents } from '../support/upstream';

import { chatView } from './stand-in';
type Upstream = Awaited<ReturnType<typeof startUpstream>>;
let upstream: Upstream;
let reply: (body: any, res: import('node:http').ServerResponse) => unknown;

beforeAll(async () => {
  upstream = await startUpstream(async (_req, body, res) => {
    await reply(body, res);
  });
});
afterAll(() => upstream.close());

const provider = chatView(openAiCompatibleProvider());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function call(extra: object = {}, timeouts = { firstByteMs: 2000, idleMs: 2000, totalMs: 5000 }): ProviderCall {
  return {
    request: parseChatCompletionRequest({ model: 'gateway-id', messages: [{ role: 'user', content: 'hi' }], custom_field: 1, ...extra }),
    route: { provider: 'openai-compatible', base_url: upstream.url, model: 'upstream-id', secret: 'x' },
    apiKey: 'sk-upstream',
    maxOutputTokens: 100,
    signal: new AbortController().signal,
    timeouts,
    requestId: 'req_test',
  };
}

async function collect(iterable: AsyncIterable<ChatCompletionChunk>) {
  const out: ChatCompletionChunk[] = [];
  for await (const chunk of iterable) out.push(chunk);
  return out;
}

async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  const err = await promise.then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('openai-compatible provider', () => {
  it('passes the body through with the upstream model id and unknown fields', async () => {
    reply = (body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'ok')));
    const completion = await provider.complete(call());
    validateCompletion(completion);
    expect(upstream.requests.at(-1)).toMatchObject({ model: 'upstream-id', custom_field: 1, stream: false });
  });

  it('asks a stream for usage and relays each chunk as it comes', async () => {
    reply = async (body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const e of streamEvents(body.model, ['a', 'b', 'c'])) {
        res.write(e);
        await sleep(5);
      }
      res.end();
    };
    const chunks = await collect(await provider.stream(call({ stream: true })));
    chunks.forEach(validateChunk);
    expect(upstream.requests.at(-1)).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 3 });
  });

  it('maps provider words for finish_reason onto OpenAI’s', async () => {
    reply = (body, res) => {
      const c = completionBody(body.model, 'x');
      (c.choices[0] as { finish_reason: string }).finish_reason = 'eos';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(c));
    };
    expect((await provider.complete(call())).choices[0].finish_reason).toBe('stop');
  });

  it.each([
    [400, { error: { message: 'bad field', param: 'foo' } }, 400, 'invalid_value', false],
    [429, { error: { message: 'slow down' } }, 503, 'server_overloaded', true],
    [500, { error: { message: 'oops' } }, 502, 'upstream_error', true],
    [503, {}, 503, 'server_overloaded', true],
  ])('maps upstream status %d onto the gateway table', async (status, body, expected, code, fallback) => {
    reply = (_b, res) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const err = await failure(provider.complete(call()));
    expect([err.status, err.code, err.fallback]).toEqual([expected, code, fallback]);
    if (status === 400) expect([err.message, err.param]).toEqual(['bad field', 'foo']);
  });

  it('answers 502 for a body that is not JSON', async () => {
    reply = (_b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('<html>');
    expect((await failure(provider.complete(call()))).status).toBe(502);
  });

  it('times out a first byte that never comes, with fallback', async () => {
    reply = () => undefined;
    const err = await failure(provider.stream(call({ stream: true }, { firstByteMs: 150, idleMs: 1000, totalMs: 1000 })));
    expect([err.status, err.code, err.fallback]).toEqual([504, 'upstream_timeout', true]);
  });

  it('does not cut a stream that lasts longer than the first-byte timeout', async () => {
    reply = async (body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const e of streamEvents(body.model, ['1', '2', '3', '4', '5', '6'])) {
        res.write(e);
        await sleep(60);
      }
      res.end();
    };
    const chunks = await collect(await provider.stream(call({ stream: true }, { firstByteMs: 150, idleMs: 1000, totalMs: 1000 })));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('123456');
  });

  it('ends a stalled stream with a timeout error', async () => {
    reply = (body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(streamEvents(body.model, ['a'])[0]);
    };
    const iterable = await provider.stream(call({ stream: true }, { firstByteMs: 1000, idleMs: 150, totalMs: 1000 }));
    const err = await failure(collect(iterable));
    expect(err.status).toBe(504);
  });

  it('treats a stream cut before [DONE] as an upstream error', async () => {
    reply = (body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(streamEvents(body.model, ['a', 'b'])[1]);
    };
    const err = await failure(collect(await provider.stream(call({ stream: true }))));
    expect([err.status, err.code]).toEqual([502, 'upstream_error']);
  });

  it('turns an error event mid-stream into an upstream error', async () => {
    reply = (body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${streamEvents(body.model, ['a'])[0]}data: {"error":{"message":"model crashed"}}\n\n`);
    };
    const err = await failure(collect(await provider.stream(call({ stream: true }))));
    expect(err.message).toContain('model crashed');
  });

  it('answers 502 with fallback when the upstream refuses connections', async () => {
    const c = call();
    c.route = { ...c.route, base_url: 'http://127.0.0.1:1/v1' };
    const err = await failure(provider.complete(c));
    expect([err.status, err.fallback]).toEqual([502, true]);
  });
});

describe('connections to the upstream', () => {
  it('reuses one keep-alive connection for answers and streams read to their end', async () => {
    const sockets = new Set<unknown>();
    const onConnection = (socket: unknown) => sockets.add(socket);
    upstream.server.on('connection', onConnection);
    try {
      upstream.server.closeIdleConnections();
      reply = async (body, res) => {
        if (!body.stream) return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'ok')));
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const e of streamEvents(body.model, ['a', 'b'])) res.write(e);
        res.end();
      };
      for (let i = 0; i < 3; i++) {
        await provider.complete(call());
        await collect(await provider.stream(call({ stream: true })));
        await sleep(10);
      }
      expect(sockets.size).toBe(1);
    } finally {
      upstream.server.off('connection', onConnection);
    }
  });
});
