import { decodeChatRequest } from '../../../lambda/codecs/openai-chat';
import { GatewayError } from '../../../lambda/contract/errors';
import { callFor, heldOutputLimit } from '../../../lambda/core/call';
import type { ChatCompletionChunk } from '../../../lambda/contract/openai';
import { anthropicProvider, refuseWhatAnthropicCannotTake } from '../../../lambda/providers/anthropic';
import type { ProviderCall } from '../../../lambda/providers/types';
import { validateChunk, validateCompletion } from '../../support/openai-schema';
import { chatView, collect, providerCall, StandIn, thrown } from '../stand-in';
import {
  CACHED_STREAM,
  ERROR_BODIES,
  jsonModeStream,
  OVERLOADED_FIRST,
  OVERLOADED_MID_STREAM,
  sse,
  stopStream,
  TEXT_MESSAGE,
  TEXT_STREAM,
  TOOL_MESSAGE,
  TOOL_STREAM,
  type SseFrame,
} from './transcripts';

const standIn = new StandIn();
let baseUrl = '';
const provider = chatView(anthropicProvider(), refuseWhatAnthropicCannotTake);
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { timezone: { type: 'string' } } } } },
];

beforeAll(async () => {
  baseUrl = await standIn.start();
});
afterAll(() => standIn.stop());

function call(body: Record<string, unknown>, options: Parameters<typeof providerCall>[2] = {}): ProviderCall {
  return providerCall(
    { messages: [{ role: 'user', content: 'Hi' }], ...body },
    { provider: 'anthropic', base_url: baseUrl, secret: 'anthropic', model: 'claude-3-5-sonnet-20241022' },
    { apiKey: 'sk-ant-test', ...options },
  );
}

function serveStream(frames: SseFrame[], gapMs = 0): void {
  standIn.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(frames), gapMs });
}

function serveJson(status: number, body: unknown): void {
  standIn.handler = () => ({ status, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(body)] });
}

async function streamChunks(body: Record<string, unknown> = {}): Promise<ChatCompletionChunk[]> {
  const chunks = await collect(await provider.stream(call({ stream: true, ...body })));
  for (const chunk of chunks) validateChunk(chunk);
  return chunks;
}

const deltas = (chunks: ChatCompletionChunk[]) => chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0].delta);
const toolDeltas = (chunks: ChatCompletionChunk[]) => deltas(chunks).flatMap((d) => d.tool_calls ?? []);

describe('anthropic provider: the upstream call', () => {
  it('posts to {base_url}/v1/messages with the key and the API version', async () => {
    serveJson(200, TEXT_MESSAGE);
    await provider.complete(call({ max_tokens: 50 }));
    const request = standIn.requests[standIn.requests.length - 1];
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/v1/messages');
    expect(request.headers['x-api-key']).toBe('sk-ant-test');
    expect(request.headers['anthropic-version']).toBe('2023-06-01');
    expect(standIn.lastJson()).toEqual({ model: 'claude-3-5-sonnet-20241022', max_tokens: 50, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] });
  });

  it('asks for a stream when streaming', async () => {
    serveStream(TEXT_STREAM);
    await streamChunks();
    expect(standIn.lastJson()).toMatchObject({ stream: true });
    expect(standIn.requests[standIn.requests.length - 1].headers.accept).toBe('text/event-stream');
  });
});

describe('anthropic provider: a call encoded once', () => {
  it('encodes a translated stream once for thinkingBilling and the call, and a new call again', async () => {
    const raw = anthropicProvider();
    // The prompt's turns are read each time the call is encoded: counted through a proxy.
    let reads = 0;
    const answerCall = () => {
      const c = call({ stream: true, reasoning_effort: 'low', max_tokens: 4000 });
      const request = callFor(decodeChatRequest(c.request), heldOutputLimit(4000));
      const prompt = new Proxy(request.prompt, { get: (target, name, receiver) => (name === 'turns' && reads++, Reflect.get(target, name, receiver)) });
      return { ...c, request: { ...request, prompt } };
    };
    serveStream(TEXT_STREAM);
    const first = answerCall();
    expect(raw.thinkingBilling?.(first)).toMatchObject({ outputLimit: 4000 });
    const once = reads;
    expect(once).toBeGreaterThan(0);
    await collect(await raw.answerStream(first));
    expect(reads).toBe(once);
    // What went out is the body thinkingBilling read.
    expect(standIn.lastJson()).toMatchObject({ stream: true, max_tokens: 4000, thinking: { type: 'enabled' } });
    serveStream(TEXT_STREAM);
    const second = answerCall();
    raw.thinkingBilling?.(second);
    await collect(await raw.answerStream(second));
    expect(reads).toBe(2 * once);
  });
});

describe('anthropic provider: extended thinking from reasoning_effort', () => {
  const THINKING_MESSAGE = {
    ...TEXT_MESSAGE,
    content: [{ type: 'thinking', thinking: 'The user greets me.', signature: 'sig' }, { type: 'text', text: 'Hi! My name is Claude.' }],
  };
  const THINKING_STREAM: SseFrame[] = [
    TEXT_STREAM[0],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'The user greets me.' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ...TEXT_STREAM.slice(1).map(([event, data]): SseFrame => [event, 'index' in data ? { ...data, index: 1 } : data]),
  ];

  it('sends the budget upstream, answers with the text and the thinking in its extension fields, and bills the thinking as output', async () => {
    serveJson(200, THINKING_MESSAGE);
    const completion = await provider.complete(call({ max_tokens: 5000, reasoning_effort: 'medium' }));
    expect(standIn.lastJson()).toMatchObject({ max_tokens: 5000, thinking: { type: 'enabled', budget_tokens: 4096 } });
    validateCompletion(completion);
    expect(completion.choices[0].message.content).toBe('Hi! My name is Claude.');
    expect(completion.choices[0].message).toMatchObject({
      reasoning_content: 'The user greets me.',
      thinking_blocks: [{ type: 'thinking', thinking: 'The user greets me.', signature: 'sig' }],
    });
    expect(completion.usage?.completion_tokens).toBe(503);
  });

  it('streams the thinking as reasoning_content and its signature as thinking_blocks, ahead of the text', async () => {
    serveStream(THINKING_STREAM);
    const chunks = await streamChunks({ max_tokens: 5000, reasoning_effort: 'low' });
    expect(standIn.lastJson()).toMatchObject({ stream: true, thinking: { type: 'enabled', budget_tokens: 1024 } });
    expect(deltas(chunks).map((d) => d.content ?? '').join('')).toBe('Hello!');
    const thinking = deltas(chunks) as Array<{ reasoning_content?: string; thinking_blocks?: unknown[]; content?: string | null }>;
    expect(thinking.map((d) => d.reasoning_content ?? '').join('')).toBe('The user greets me.');
    expect(thinking.flatMap((d) => d.thinking_blocks ?? [])).toEqual([{ type: 'thinking', thinking: '', signature: 'sig' }]);
    const firstText = thinking.findIndex((d) => d.content === 'Hello');
    expect(thinking.findIndex((d) => d.thinking_blocks)).toBeLessThan(firstText);
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(15);
  });
});

describe('anthropic provider: JSON answers → ChatCompletion', () => {
  it('maps a text answer, with usage including cache reads and writes', async () => {
    serveJson(200, TEXT_MESSAGE);
    const completion = await provider.complete(call({}));
    validateCompletion(completion);
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]).toMatchObject({ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Hi! My name is Claude.', refusal: null } });
    expect(completion.usage).toEqual({
      prompt_tokens: 2095 + 100 + 1000,
      completion_tokens: 503,
      total_tokens: 2095 + 100 + 1000 + 503,
      prompt_tokens_details: { cached_tokens: 1000 },
    });
  });

  it('maps tool_use blocks to tool_calls with JSON-string arguments and finish_reason tool_calls', async () => {
    serveJson(200, TOOL_MESSAGE);
    const completion = await provider.complete(call({ tools: TOOLS }));
    validateCompletion(completion);
    expect(completion.choices[0].finish_reason).toBe('tool_calls');
    expect(completion.choices[0].message.content).toBe("I'll check the current weather in San Francisco for you.");
    expect(completion.choices[0].message.tool_calls).toEqual([
      { id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA","unit":"celsius"}' } },
    ]);
  });

  it('returns the forced JSON tool input as the message content in JSON mode', async () => {
    serveJson(200, {
      ...TOOL_MESSAGE,
      content: [{ type: 'tool_use', id: 'toolu_x', name: 'json_object', input: { answer: 42 } }],
    });
    const completion = await provider.complete(call({ response_format: { type: 'json_object' } }));
    validateCompletion(completion);
    expect(completion.choices[0].message.content).toBe('{"answer":42}');
    expect(completion.choices[0].message.tool_calls).toBeUndefined();
    expect(completion.choices[0].finish_reason).toBe('stop');
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'stop'],
    ['something_new', 'stop'],
  ])('maps stop_reason %s to finish_reason %s', async (stopReason, finishReason) => {
    serveJson(200, { ...TEXT_MESSAGE, stop_reason: stopReason });
    const completion = await provider.complete(call({}));
    validateCompletion(completion);
    expect(completion.choices[0].finish_reason).toBe(finishReason);
  });
});

describe('anthropic provider: stream events → chunks', () => {
  it('maps a text stream chunk by chunk, ignoring ping', async () => {
    serveStream(TEXT_STREAM);
    const chunks = await streamChunks();
    expect(chunks.map((c) => [c.choices[0]?.delta ?? null, c.choices[0]?.finish_reason ?? null, c.usage ?? null])).toEqual([
      [{ role: 'assistant', content: '' }, null, null],
      [{ content: 'Hello' }, null, null],
      [{ content: '!' }, null, null],
      [{}, 'stop', null],
      [null, null, { prompt_tokens: 25, completion_tokens: 15, total_tokens: 40, prompt_tokens_details: { cached_tokens: 0 } }],
    ]);
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set(['chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U']));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
  });

  it('maps text then two tool calls chunk by chunk', async () => {
    serveStream(TOOL_STREAM);
    const chunks = await streamChunks({ tools: TOOLS });
    expect(chunks.map((c) => c.choices[0]?.delta ?? c.usage)).toEqual([
      { role: 'assistant', content: '' },
      { content: "Okay, let's check the weather" },
      { content: ' for both cities:' },
      { tool_calls: [{ index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] },
      { tool_calls: [{ index: 0, function: { arguments: ' "San Francisco, CA"}' } }] },
      { tool_calls: [{ index: 1, id: 'toolu_02Ab9QbN8m6yUq2sKUMPvxzD', type: 'function', function: { name: 'get_time', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{"timezone": "America/New_York"}' } }] },
      {},
      { prompt_tokens: 472, completion_tokens: 89, total_tokens: 561, prompt_tokens_details: { cached_tokens: 0 } },
    ]);
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('tool_calls');
  });

  it('streams JSON mode as content and ends with stop', async () => {
    serveStream(jsonModeStream('json_object'));
    const chunks = await streamChunks({ response_format: { type: 'json_object' } });
    expect(toolDeltas(chunks)).toEqual([]);
    expect(deltas(chunks).map((d) => d.content ?? '').join('')).toBe('{"answer": 42}');
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('stop');
  });

  it('sends {} as the arguments of a tool called with no input', async () => {
    serveStream([
      TOOL_STREAM[0],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_now', name: 'get_time', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 9 } }],
      ['message_stop', { type: 'message_stop' }],
    ]);
    const chunks = await streamChunks({ tools: TOOLS });
    expect(toolDeltas(chunks).map((t) => t.function?.arguments ?? '').join('')).toBe('{}');
  });

  it('puts cache reads in prompt_tokens_details.cached_tokens and counts cache writes as prompt tokens', async () => {
    serveStream(CACHED_STREAM);
    const chunks = await streamChunks();
    expect(chunks[chunks.length - 1].usage).toEqual({
      prompt_tokens: 10 + 200 + 1800,
      completion_tokens: 7,
      total_tokens: 10 + 200 + 1800 + 7,
      prompt_tokens_details: { cached_tokens: 1800 },
    });
  });
});

describe('anthropic provider: the bugs other gateways ship', () => {
  it('bug: tool-call chunks without id or name — each call’s first chunk carries id, type and name', async () => {
    serveStream(TOOL_STREAM);
    const calls = toolDeltas(await streamChunks({ tools: TOOLS }));
    for (const index of [0, 1]) {
      const first = calls.find((t) => t.index === index);
      expect(first).toMatchObject({ id: expect.stringMatching(/^toolu_/), type: 'function', function: { name: expect.any(String) } });
    }
  });

  it('bug: wrong index — tool calls are numbered 0, 1 in order, not by Anthropic content block index', async () => {
    serveStream(TOOL_STREAM);
    const calls = toolDeltas(await streamChunks({ tools: TOOLS }));
    expect(calls.map((t) => t.index)).toEqual([0, 0, 0, 1, 1]);
    expect(calls.filter((t) => t.id).map((t) => [t.index, t.function?.name])).toEqual([
      [0, 'get_weather'],
      [1, 'get_time'],
    ]);
  });

  it('bug: tool name lost when text and a tool call arrive together — the name survives right after text', async () => {
    serveStream([
      TEXT_STREAM[0],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: 'Let me look.' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"location":"Oslo"}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 1 }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20 } }],
      ['message_stop', { type: 'message_stop' }],
    ]);
    const chunks = await streamChunks({ tools: TOOLS });
    expect(deltas(chunks).map((d) => d.content ?? '').join('')).toBe('Let me look.');
    expect(toolDeltas(chunks)[0]).toEqual({ index: 0, id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '' } });
  });

  it('bug: role missing from the first chunk — the first chunk is the assistant role', async () => {
    serveStream(TOOL_STREAM);
    const chunks = await streamChunks({ tools: TOOLS });
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.slice(1).some((c) => c.choices[0]?.delta.role !== undefined)).toBe(false);
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'stop'],
    ['refusal', 'content_filter'],
  ])("bug: finish_reason 'end_turn' leaking — stop_reason %s streams as %s", async (stopReason, finishReason) => {
    serveStream(stopStream(stopReason));
    const chunks = await streamChunks();
    const reasons = chunks.map((c) => c.choices[0]?.finish_reason).filter((r) => r != null);
    expect(reasons).toEqual([finishReason]);
  });

  it("bug: usage summed twice — message_delta's cumulative output replaces message_start's, once", async () => {
    serveStream(TEXT_STREAM); // message_start says output_tokens 1, message_delta says 15 (cumulative)
    const chunks = await streamChunks();
    const usages = chunks.filter((c) => c.usage);
    expect(usages).toHaveLength(1);
    expect(usages[0].usage?.completion_tokens).toBe(15);
    expect(usages[0].choices).toEqual([]);
  });
});

describe('anthropic provider: errors', () => {
  it.each([
    ['overloaded_error', 529, 503, 'server_overloaded', true],
    ['rate_limit_error', 429, 503, 'server_overloaded', true],
    ['invalid_request_error', 400, 400, 'invalid_value', false],
    ['authentication_error', 401, 502, 'upstream_error', true],
    ['permission_error', 403, 502, 'upstream_error', true],
    ['not_found_error', 404, 502, 'upstream_error', true],
    ['api_error', 500, 502, 'upstream_error', true],
  ] as const)('maps %s (HTTP %i) to %i %s, fallback %s', async (type, status, expected, code, fallback) => {
    serveJson(status, ERROR_BODIES[type]);
    for (const attempt of [() => provider.complete(call({})), () => provider.stream(call({ stream: true }))]) {
      const err = await thrown(attempt);
      expect(err).toBeInstanceOf(GatewayError);
      expect(err).toMatchObject({ status: expected, code, fallback });
    }
  });

  it("passes the provider's message on a 400", async () => {
    serveJson(400, ERROR_BODIES.invalid_request_error);
    const err = await thrown(() => provider.complete(call({})));
    expect((err as GatewayError).message).toBe(ERROR_BODIES.invalid_request_error.error.message);
  });

  it('falls back when an overloaded error is the first stream event', async () => {
    serveStream(OVERLOADED_FIRST);
    const err = await thrown(() => provider.stream(call({ stream: true })));
    expect(err).toMatchObject({ status: 503, code: 'server_overloaded', fallback: true });
  });

  it('throws a GatewayError when an error event arrives mid-stream, after the chunks before it', async () => {
    serveStream(OVERLOADED_MID_STREAM);
    const seen: ChatCompletionChunk[] = [];
    const err = await thrown(async () => {
      for await (const chunk of await provider.stream(call({ stream: true }))) seen.push(chunk);
    });
    expect(seen.map((c) => c.choices[0].delta.content)).toEqual(['', 'Hel']);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ status: 503, code: 'server_overloaded' });
  });

  it('throws when the stream ends before message_stop', async () => {
    serveStream(TEXT_STREAM.slice(0, 4));
    const stream = await provider.stream(call({ stream: true }));
    const err = await thrown(() => collect(stream));
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(502);
  });

  it('answers 504 with fallback when the upstream sends no headers in time', async () => {
    standIn.handler = () => ({ hang: 'before_headers' });
    const err = await thrown(() => provider.stream(call({ stream: true }, { timeouts: { firstByteMs: 100 } })));
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout', fallback: true });
    const errJson = await thrown(() => provider.complete(call({}, { timeouts: { firstByteMs: 100 } })));
    expect(errJson).toMatchObject({ status: 504, code: 'upstream_timeout', fallback: true });
  });

  it('does not cut a stream that outlives the first-byte timeout', async () => {
    serveStream(TEXT_STREAM, 40);
    const chunks = await collect(await provider.stream(call({ stream: true }, { timeouts: { firstByteMs: 100, idleMs: 1000 } })));
    expect(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean)).toEqual(['stop']);
  });

  it('throws 504 when the stream goes silent for longer than the idle timeout', async () => {
    standIn.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(TEXT_STREAM.slice(0, 3)), hang: 'after_parts' });
    const stream = await provider.stream(call({ stream: true }, { timeouts: { idleMs: 150 } }));
    const err = await thrown(() => collect(stream));
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout' });
  });

  it('answers 502 with fallback when the upstream cannot be reached', async () => {
    const closed = new StandIn();
    const url = await closed.start();
    await closed.stop();
    const err = await thrown(() =>
      provider.complete(providerCall({ messages: [{ role: 'user', content: 'Hi' }] }, { provider: 'anthropic', base_url: url, model: 'claude-3-5-sonnet-20241022' })),
    );
    expect(err).toMatchObject({ status: 502, code: 'upstream_error', fallback: true });
  });

  it('stops reading and does not fall back when the client goes away', async () => {
    serveStream(TEXT_STREAM, 50);
    const controller = new AbortController();
    const stream = await provider.stream(call({ stream: true }, { signal: controller.signal }));
    const seen: ChatCompletionChunk[] = [];
    const err = await thrown(async () => {
      for await (const chunk of stream) {
        seen.push(chunk);
        controller.abort();
      }
    });
    expect(seen).toHaveLength(1);
    expect(err).toMatchObject({ status: 502, fallback: false, message: 'The request was cancelled.' });
  });

  it('rejects parameters it cannot honour before calling the upstream', async () => {
    const before = standIn.requests.length;
    const err = await thrown(() => provider.complete(call({ seed: 7 })));
    expect(err).toMatchObject({ status: 400, param: 'seed' });
    expect(standIn.requests.length).toBe(before);
  });
});
