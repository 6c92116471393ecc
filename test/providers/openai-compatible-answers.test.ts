import { decodeChatRequest } from '../../lambda/codecs/openai-chat';
import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { collectAnswer, type AnswerEvent } from '../../lambda/core/answer';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import { openAiCompatibleProvider } from '../../lambda/providers/openai-compatible';
import type { AnswerCall, RelayedEvent } from '../../lambda/providers/types';
import { completionBody, startUpstream, streamEvents } from '../support/upstream';

/** The OpenAI-compatible provider's canonical interface (issue 18): a Call in, AnswerEvents out, and the same-wire relay. */
type Upstream = Awaited<ReturnType<typeof startUpstream>>;
let upstream: Upstream;
let reply: (body: any, res: import('node:http').ServerResponse) => unknown;

beforeAll(async () => {
  upstream = await startUpstream(async (_req, body, res) => {
    await reply(body, res);
  });
});
afterAll(() => upstream.close());

const provider = openAiCompatibleProvider();

function call(extra: object = {}, route: object = {}, limit = 300): AnswerCall {
  const request = parseChatCompletionRequest({ model: 'gateway-id', messages: [{ role: 'user', content: 'hi' }], custom_field: 1, ...extra });
  return {
    request: callFor(decodeChatRequest(request), heldOutputLimit(limit)),
    route: { provider: 'openai-compatible', base_url: upstream.url, model: 'upstream-id', secret: 'x', ...route },
    apiKey: 'sk-upstream',
    maxOutputTokens: 1000,
    signal: new AbortController().signal,
    timeouts: { firstByteMs: 2000, idleMs: 2000, totalMs: 5000 },
    requestId: 'req_test',
  };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const streamReply = (pieces: string[], extra = '') => (body: any, res: import('node:http').ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const events = streamEvents(body.model, pieces);
  res.end(extra ? [...events.slice(0, 2), extra].join('') : events.join(''));
};

describe('openai-compatible provider: the canonical interface', () => {
  it('sends the call with the upstream model, the held output limit, unknown fields, and no thinking fields', async () => {
    reply = (body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'ok')));
    const messages = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'thought', reasoning_content: 'secret', thinking_blocks: [{ type: 'thinking', thinking: 'secret', signature: 's' }] },
      { role: 'user', content: 'again' },
    ];
    const answer = await provider.answer(call({ messages, max_tokens: 50 }, {}, 300));
    const sent = upstream.requests.at(-1);
    expect(sent).toMatchObject({ model: 'upstream-id', custom_field: 1, max_tokens: 300 });
    expect(sent.max_completion_tokens).toBeUndefined();
    expect(JSON.stringify(sent.messages)).not.toContain('secret');
    expect(answer.parts).toEqual([{ type: 'text', text: 'ok' }]);
    expect(answer.usage).toMatchObject({ inputTokens: 10, outputTokens: 5 });
  });

  it("puts the limit in the route's output_limit_field", async () => {
    reply = (body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'ok')));
    await provider.answer(call({}, { output_limit_field: 'max_completion_tokens' }, 77));
    expect(upstream.requests.at(-1)).toMatchObject({ max_completion_tokens: 77 });
    expect(upstream.requests.at(-1).max_tokens).toBeUndefined();
  });

  it("maps a provider's finish words and reports the tier that served the answer", async () => {
    reply = (body, res) => {
      const c = { ...completionBody(body.model, 'x'), service_tier: 'priority' };
      (c.choices[0] as { finish_reason: string }).finish_reason = 'MAX_TOKENS';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(c));
    };
    const answer = await provider.answer(call());
    expect(answer.finishReason).toBe('length');
    expect(answer.usage?.serviceTier).toBe('priority');
  });

  it('streams answer events that add up to the answer, usage last', async () => {
    reply = streamReply(['a', 'b', 'c']);
    const events = await collect(await provider.answerStream(call({ stream: true })));
    expect(upstream.requests.at(-1)).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const answer = collectAnswer(events);
    expect(answer.parts).toEqual([{ type: 'text', text: 'abc' }]);
    expect(events.at(-1)).toEqual({ type: 'usage', usage: expect.objectContaining({ inputTokens: 10, outputTokens: 3 }) });
  });

  it('relays each event as the upstream wrote it, decoding only the usage; the text delivered is read back on demand', async () => {
    reply = streamReply(['Hel', 'lo']);
    const relay = await provider.relayStream!(call({ stream: true }));
    const events: RelayedEvent[] = await collect(relay);
    const sent = streamEvents('upstream-id', ['Hel', 'lo']).slice(0, -1).map((e) => e.slice('data: '.length, -2));
    expect(events.map((e) => e.data)).toEqual(sent);
    const meaning: AnswerEvent[] = events.flatMap((e) => [...e.answer]);
    expect(meaning).toEqual([{ type: 'usage', usage: expect.objectContaining({ inputTokens: 10, outputTokens: 2 }) }]);
    expect(relay.deliveredText!()).toBe('Hello');
  });

  it('throws an error event mid-stream as an upstream error, after the events before it', async () => {
    reply = streamReply(['a'], 'data: {"error":{"message":"model crashed"}}\n\n');
    const relayed: string[] = [];
    const err = await (async () => {
      for await (const e of await provider.relayStream!(call({ stream: true }))) relayed.push(e.data);
    })().then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).message).toContain('model crashed');
    expect(relayed.length).toBe(2);
  });

  it('fails before answering when the first event is already an error (a 502 before the first byte, not a relayed error)', async () => {
    reply = (_b, res) => res.writeHead(200, { 'content-type': 'text/event-stream' }).end('data: {"error":{"message":"overloaded"}}\n\n');
    const err = await provider.answerStream(call({ stream: true })).then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect([(err as GatewayError).status, (err as GatewayError).message]).toEqual([502, 'The upstream failed mid-stream: overloaded']);
  });

  it('treats a stream cut before [DONE] as an upstream error', async () => {
    reply = (body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(streamEvents(body.model, ['a', 'b']).slice(0, 2).join(''));
    };
    const err = await collect(await provider.answerStream(call({ stream: true }))).then(() => undefined, (e) => e);
    expect([err?.status, err?.code]).toEqual([502, 'upstream_error']);
  });
});
