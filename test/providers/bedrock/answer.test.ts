// The Bedrock provider in the canonical model (issue 18): Call in, AnswerEvents out, against a
// loopback stand-in for the Bedrock runtime endpoint (HTTP/2, AWS event-stream frames).
import fc from 'fast-check';
import { collectAnswer, type Answer, type AnswerEvent, type AnswerPart, type FinishReason } from '../../../lambda/core/answer';
import { heldOutputLimit, type Call, type CallSettings } from '../../../lambda/core/call';
import type { Prompt } from '../../../lambda/core/prompt';
import { GatewayError } from '../../../lambda/contract/errors';
import { bedrockAnswerProvider } from '../../../lambda/providers/bedrock';
import { DEFAULT_TIMEOUTS, type AnswerCall, type UpstreamTimeouts } from '../../../lambda/providers/types';
import { answer as answerOf, reasoningPart, signature, textPart, toolCallPart, usage } from '../../codecs/arbitraries';
import { collect, StandIn, thrown } from '../stand-in';
import { errorReply, eventStreamReply, exceptionFrame, jsonReply, route, testBedrockClient } from './stand-in';
import { converseResponseOf, converseStreamOf, TEXT_RESPONSE, TEXT_STREAM, THINKING_STREAM, TOOL_STREAM } from './transcripts';

const CLAUDE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const standIn = new StandIn('h2c');
let endpoint = '';
const provider = bedrockAnswerProvider({ createClient: testBedrockClient });

beforeAll(async () => {
  endpoint = await standIn.start();
});
afterAll(() => standIn.stop());

const hi: Prompt = { system: [], turns: [{ role: 'user', parts: [{ type: 'text', text: 'Hi' }] }] };
const WEATHER = { kind: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } };

function answerCall(
  prompt: Prompt = hi,
  settings: Partial<Omit<CallSettings, 'maxOutputTokens'>> & { maxOutputTokens?: number } = {},
  options: { timeouts?: Partial<UpstreamTimeouts>; signal?: AbortSignal; model?: string } = {},
): AnswerCall {
  const { maxOutputTokens = 4096, ...rest } = settings;
  const request: Call = { prompt, settings: { model: 'gateway-model', stream: false, tools: [], ...rest, maxOutputTokens: heldOutputLimit(maxOutputTokens) } };
  return {
    request,
    route: { provider: 'bedrock', base_url: endpoint, model: options.model ?? CLAUDE, region: 'us-east-1' },
    apiKey: undefined,
    maxOutputTokens: 8192,
    signal: options.signal ?? new AbortController().signal,
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    requestId: 'req_test_1',
  };
}

type Wire = { messages: Array<{ role: string; content: Array<Record<string, unknown>> }>; system?: unknown[]; toolConfig?: { tools: unknown[]; toolChoice?: unknown }; additionalModelRequestFields?: Record<string, unknown>; inferenceConfig?: Record<string, unknown>; serviceTier?: unknown };
const sent = () => standIn.lastJson<Wire>();

/** Exactly the answer, less what the provider makes up itself (the id, the clock). */
const comparable = (a: Answer) => ({ parts: a.parts, finishReason: a.finishReason, usage: a.usage });

describe('bedrock answer provider: the prompt’s thinking goes back to Converse', () => {
  // A tool-call turn as Claude wrote it: signed thinking, redacted thinking, then the tool use.
  const REDACTED = Buffer.from('opaque redacted thinking bytes').toString('base64');
  const continuation: Prompt = {
    system: [{ type: 'text', text: 'Be brief.' }],
    turns: [
      { role: 'user', parts: [{ type: 'text', text: 'Weather in Paris?' }] },
      {
        role: 'assistant',
        parts: [
          { type: 'reasoning', text: 'I should call the tool.', signature: 'sig-1' },
          { type: 'reasoning', text: '', redactedData: REDACTED },
          { type: 'text', text: 'Checking.' },
          { type: 'tool_call', id: 'tooluse_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
        ],
      },
      { role: 'user', parts: [{ type: 'tool_result', toolCallId: 'tooluse_1', content: [{ type: 'text', text: '18°C' }] }] },
    ],
  };

  it('sends reasoning parts as reasoningContent blocks, unchanged and in order ahead of toolUse, with thinking kept on', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.answer(answerCall(continuation, { tools: [WEATHER], reasoning: { mode: 'enabled', effort: 'low' } }));
    const wire = sent();
    expect(wire.messages[1]).toEqual({
      role: 'assistant',
      content: [
        { reasoningContent: { reasoningText: { text: 'I should call the tool.', signature: 'sig-1' } } },
        { reasoningContent: { redactedContent: REDACTED } },
        { text: 'Checking.' },
        { toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } } },
      ],
    });
    expect(wire.messages[2]).toEqual({ role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_1', content: [{ text: '18°C' }] } }] });
    // The continuation carries Claude's own thinking, so thinking stays on for the tool turn.
    expect(wire.additionalModelRequestFields).toEqual({ thinking: { type: 'enabled', budget_tokens: 1024 } });
    expect(wire.system).toEqual([{ text: 'Be brief.' }]);
  });

  it('leaves out thinking nobody signed, and then does not enable thinking on the tool turn (Claude would refuse it)', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    const unsigned: Prompt = {
      ...continuation,
      turns: continuation.turns.map((t) => (t.role === 'assistant' ? { ...t, parts: [{ type: 'reasoning', text: 'DeepSeek thought this.' }, ...t.parts.slice(2)] } : t)),
    } as Prompt;
    await provider.answer(answerCall(unsigned, { tools: [WEATHER], reasoning: { mode: 'enabled', effort: 'low' } }));
    const wire = sent();
    expect(wire.messages[1].content.map((b) => Object.keys(b)[0])).toEqual(['text', 'toolUse']);
    expect(wire.additionalModelRequestFields).toBeUndefined();
  });

  it('never sends thinking to a model that is not Claude, and sends no field when the client turned thinking off', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.answer(answerCall(hi, { reasoning: { mode: 'enabled', effort: 'high' } }, { model: 'amazon.nova-pro-v1:0' }));
    expect(sent().additionalModelRequestFields).toBeUndefined();
    await provider.answer(answerCall(hi, { reasoning: { mode: 'disabled', effort: 'none' } }));
    expect(sent().additionalModelRequestFields).toBeUndefined();
  });

  it('turns thinking off when JSON mode forces its tool, as Claude refuses both together', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.answer(answerCall(hi, { responseFormat: { type: 'json_object' }, reasoning: { mode: 'enabled', effort: 'high' } }));
    expect(sent().toolConfig?.toolChoice).toEqual({ tool: { name: 'json_object' } });
    expect(sent().additionalModelRequestFields).toBeUndefined();
  });

  it('property: every signed or redacted reasoning part reaches Converse unchanged, in its place; unsigned ones never', () => {
    const { converseRequest } = jest.requireActual('../../../lambda/providers/bedrock/request') as typeof import('../../../lambda/providers/bedrock/request');
    const canonicalB64 = signature.filter((s) => Buffer.from(s, 'base64').toString('base64') === s);
    const part: fc.Arbitrary<AnswerPart> = fc.oneof(
      fc.record({ type: fc.constant('reasoning' as const), text: fc.string({ maxLength: 12 }), signature }),
      fc.record({ type: fc.constant('reasoning' as const), text: fc.string({ maxLength: 12 }) }),
      fc.record({ type: fc.constant('reasoning' as const), text: fc.constant(''), redactedData: canonicalB64 }),
      textPart,
      toolCallPart,
    );
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 6 }), (parts) => {
        const prompt = { system: [], turns: [{ role: 'user', parts: [{ type: 'text', text: 'go' }] }, { role: 'assistant', parts }] } as Prompt;
        const { input } = converseRequest(answerCall(prompt).request, CLAUDE);
        const expected = parts.flatMap((p): unknown[] => {
          if (p.type === 'text') return [{ text: p.text }];
          if (p.type === 'tool_call') return [{ toolUse: { toolUseId: p.id, name: p.name, input: JSON.parse(p.arguments) } }];
          if (p.type !== 'reasoning') return [];
          if (p.redactedData !== undefined) return [{ reasoningContent: { redactedContent: p.redactedData } }];
          return p.signature ? [{ reasoningContent: { reasoningText: { text: p.text, signature: p.signature } } }] : [];
        });
        const got = (input.messages?.[1]?.content ?? []).map((b) =>
          b.reasoningContent?.redactedContent ? { reasoningContent: { redactedContent: Buffer.from(b.reasoningContent.redactedContent).toString('base64') } } : b,
        );
        expect(got).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });
});

describe('bedrock answer provider: the rest of the request', () => {
  it('sends the held output limit, sampling, stop sequences, tools and tool choice', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.answer(answerCall(hi, { maxOutputTokens: 321, temperature: 1.7, topP: 0.9, stop: ['END'], tools: [WEATHER], toolChoice: { type: 'tool', name: 'get_weather' } }));
    const wire = sent();
    expect(wire.inferenceConfig).toEqual({ maxTokens: 321, temperature: 1, topP: 0.9, stopSequences: ['END'] });
    expect(wire.toolConfig).toEqual({ tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: WEATHER.parameters } } }], toolChoice: { tool: { name: 'get_weather' } } });
  });

  it('turns cache marks into cachePoint blocks after the marked system text, message part and tool', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    const prompt: Prompt = {
      system: [{ type: 'text', text: 'Long rules.', cache: { ttl: '1h' } }],
      turns: [{ role: 'user', parts: [{ type: 'text', text: 'Long document.', cache: {} }, { type: 'text', text: 'Question?' }] }],
    };
    await provider.answer(answerCall(prompt, { tools: [{ ...WEATHER, cache: {} }] }));
    const wire = sent();
    expect(wire.system).toEqual([{ text: 'Long rules.' }, { cachePoint: { type: 'default', ttl: '1h' } }]);
    expect(wire.messages[0].content).toEqual([{ text: 'Long document.' }, { cachePoint: { type: 'default' } }, { text: 'Question?' }]);
    expect(wire.toolConfig?.tools[1]).toEqual({ cachePoint: { type: 'default' } });
  });

  it('leaves out empty text, which Converse refuses as blank', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.answer(answerCall({ system: [{ type: 'text', text: '' }], turns: [{ role: 'user', parts: [{ type: 'text', text: '' }, { type: 'text', text: 'Hi' }] }] }));
    expect(sent().system).toBeUndefined();
    expect(sent().messages).toEqual([{ role: 'user', content: [{ text: 'Hi' }] }]);
  });

  it('sends documents and errored tool results in Converse’s shapes, and joins a mid-conversation system turn to the system prompt', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    const pdf = Buffer.from('%PDF-1.4 tiny').toString('base64');
    const prompt: Prompt = {
      system: [{ type: 'text', text: 'A.' }],
      turns: [
        { role: 'user', parts: [{ type: 'document', title: 'Q3 report.pdf', source: { kind: 'base64', mediaType: 'application/pdf', data: pdf } }, { type: 'text', text: 'Sum it up.' }] },
        { role: 'assistant', parts: [{ type: 'tool_call', id: 't1', name: 'get_weather', arguments: '' }] },
        { role: 'user', parts: [{ type: 'tool_result', toolCallId: 't1', isError: true, content: [{ type: 'text', text: 'timeout' }] }] },
        { role: 'system', parts: [{ type: 'text', text: 'B.' }] },
        { role: 'user', parts: [{ type: 'text', text: 'Again.' }] },
      ],
    };
    await provider.answer(answerCall(prompt, { tools: [WEATHER] }));
    const wire = sent();
    expect(wire.system).toEqual([{ text: 'A.' }, { text: 'B.' }]);
    expect(wire.messages[0].content[0]).toEqual({ document: { name: 'Q3 report pdf', format: 'pdf', source: { bytes: pdf } } });
    expect(wire.messages[1].content).toEqual([{ toolUse: { toolUseId: 't1', name: 'get_weather', input: {} } }]);
    // The tool result and the user text after the system turn are one user turn, as Converse alternates roles.
    expect(wire.messages[2]).toEqual({ role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'timeout' }], status: 'error' } }, { text: 'Again.' }] });
  });

  it.each([
    ['an image URL', { ...hi, turns: [{ role: 'user', parts: [{ type: 'image', source: { kind: 'url', url: 'https://x.test/a.png' } }] }] } as Prompt, {}, 'messages[0].content[0]'],
    ['parallel_tool_calls: false', hi, { tools: [WEATHER], parallelToolCalls: false }, 'parallel_tool_calls'],
    ['logprobs from a Chat client', hi, { extensions: { wire: 'openai-chat' as const, fields: { logprobs: true } } }, 'logprobs'],
    ['top_k on a model that is not Claude', hi, { topK: 5 }, 'top_k'],
  ])('answers 400 before calling Bedrock for %s', async (_what, prompt, settings, param) => {
    const before = standIn.requests.length;
    const model = param === 'top_k' ? 'amazon.nova-pro-v1:0' : CLAUDE;
    const err = await thrown(() => provider.answer(answerCall(prompt, settings as Partial<CallSettings>, { model })));
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ status: 400, param, fallback: false });
    expect(standIn.requests.length).toBe(before);
  });

  it('asks for the service tier the client named, when Converse has it', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.answer(answerCall(hi, { serviceTier: 'priority' }));
    expect(sent().serviceTier).toEqual({ type: 'priority' });
    await provider.answer(answerCall(hi, { serviceTier: 'auto' }));
    expect(sent().serviceTier).toBeUndefined();
  });
});

describe('bedrock answer provider: ConverseStream → answer events', () => {
  it('keeps streamed thinking: reasoning deltas, then the signature, in the part ahead of the text', async () => {
    route(standIn, { stream: eventStreamReply(THINKING_STREAM) });
    const events = await collect(await provider.answerStream(answerCall(hi, { stream: true, reasoning: { mode: 'enabled', effort: 'low' } })));
    expect(events.filter((e) => e.type !== 'start')).toEqual([
      { type: 'reasoning', index: 0, text: 'The user greets; ' },
      { type: 'reasoning', index: 0, text: 'greet back.' },
      { type: 'reasoning_signature', index: 0, signature: 'EqQBCkgIARABGAIiQL2signature' },
      { type: 'text', index: 1, text: 'Hello!' },
      { type: 'finish', reason: 'stop' },
      { type: 'usage', usage: { inputTokens: 40, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 30 } },
    ]);
    expect(events[0]).toMatchObject({ type: 'start', id: 'chatcmpl-b7f1c6a2-0000-4000-8000-000000000001', model: CLAUDE });
  });

  it('keeps a redacted thinking block whole, as the base64 of its bytes', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251, 252]);
    route(standIn, {
      stream: eventStreamReply([
        THINKING_STREAM[0],
        ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { redactedContent: bytes.toString('base64') } } }],
        ['contentBlockStop', { contentBlockIndex: 0 }],
        ...THINKING_STREAM.slice(5),
      ]),
    });
    const answer = collectAnswer(await collect(await provider.answerStream(answerCall())));
    expect(answer.parts).toEqual([{ type: 'reasoning', text: '', redactedData: bytes.toString('base64') }, { type: 'text', text: 'Hello!' }]);
  });

  it('numbers parts in the order blocks open, tool calls after text, and ends with tool_calls', async () => {
    route(standIn, { stream: eventStreamReply(TOOL_STREAM) });
    const answer = collectAnswer(await collect(await provider.answerStream(answerCall(hi, { tools: [WEATHER] }))));
    expect(answer.parts).toEqual([
      { type: 'text', text: 'Let me look up both.' },
      { type: 'tool_call', id: 'tooluse_kZJMlvQmRJ6eAyJE5GIl7Q', name: 'top_song', arguments: '{"sign": "WZPZ"}' },
      { type: 'tool_call', id: 'tooluse_Qa1B2c3D4e5F6g7H8i9J0k', name: 'top_song', arguments: '{"sign": "WKRP"}' },
    ]);
    expect(answer.finishReason).toBe('tool_calls');
  });

  it('streams a JSON-mode answer as text, ending with stop', async () => {
    route(standIn, {
      stream: eventStreamReply([
        ['messageStart', { role: 'assistant' }],
        ['contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: 'tooluse_json', name: 'json_object' } } }],
        ['contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '{"answer": ' } } }],
        ['contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '42}' } } }],
        ['contentBlockStop', { contentBlockIndex: 0 }],
        ['messageStop', { stopReason: 'tool_use' }],
        TEXT_STREAM[TEXT_STREAM.length - 1],
      ]),
    });
    const answer = collectAnswer(await collect(await provider.answerStream(answerCall(hi, { responseFormat: { type: 'json_object' } }))));
    expect(sent().toolConfig?.toolChoice).toEqual({ tool: { name: 'json_object' } });
    expect(answer.parts).toEqual([{ type: 'text', text: '{"answer": 42}' }]);
    expect(answer.finishReason).toBe('stop');
  });

  it('reports every usage class Bedrock sends: cache reads, 5-minute and 1-hour writes, and the tier served', async () => {
    const stream = [...TEXT_STREAM.slice(0, -1)];
    stream.push([
      'metadata',
      {
        usage: { inputTokens: 12, outputTokens: 7, totalTokens: 2319, cacheReadInputTokens: 1800, cacheWriteInputTokens: 500, cacheDetails: [{ ttl: '5m', inputTokens: 200 }, { ttl: '1h', inputTokens: 300 }] },
        metrics: { latencyMs: 9 },
        serviceTier: { type: 'priority' },
      },
    ]);
    route(standIn, { stream: eventStreamReply(stream) });
    const events = await collect(await provider.answerStream(answerCall()));
    expect(events[events.length - 1]).toEqual({
      type: 'usage',
      usage: { inputTokens: 12, cacheReadTokens: 1800, cacheWriteTokens: 200, cacheWrite1hTokens: 300, outputTokens: 7, serviceTier: 'priority' },
    });
  });

  it('counts cache writes without a lifetime split as 5-minute writes', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    const answer = await provider.answer(answerCall());
    expect(answer.usage).toEqual({ inputTokens: 2095, cacheReadTokens: 1000, cacheWriteTokens: 100, cacheWrite1hTokens: 0, outputTokens: 503 });
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop_sequence'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['content_filtered', 'refusal'],
    ['guardrail_intervened', 'refusal'],
  ])('maps stopReason %s to the finish reason %s, in JSON and in streams', async (stopReason, reason) => {
    const base: Answer = { id: 'x', model: CLAUDE, createdS: 0, parts: [{ type: 'text', text: 'x' }], finishReason: 'stop', usage: { inputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 1 } };
    route(standIn, { converse: jsonReply(converseResponseOf(base, stopReason)), stream: eventStreamReply(converseStreamOf(base, stopReason)) });
    expect((await provider.answer(answerCall())).finishReason).toBe(reason);
    expect(collectAnswer(await collect(await provider.answerStream(answerCall()))).finishReason).toBe(reason);
  });
});

describe('bedrock answer provider: Converse (JSON) answers', () => {
  it('keeps reasoning blocks (text and signature, redacted bytes) in their places', async () => {
    const redacted = Buffer.from('secret').toString('base64');
    route(standIn, {
      converse: jsonReply({
        ...TEXT_RESPONSE,
        stopReason: 'tool_use',
        output: {
          message: {
            role: 'assistant',
            content: [
              { reasoningContent: { reasoningText: { text: 'Let me think.', signature: 'sig' } } },
              { reasoningContent: { redactedContent: redacted } },
              { toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Oslo' } } },
            ],
          },
        },
      }),
    });
    const answer = await provider.answer(answerCall(hi, { tools: [WEATHER] }));
    expect(answer.parts).toEqual([
      { type: 'reasoning', text: 'Let me think.', signature: 'sig' },
      { type: 'reasoning', text: '', redactedData: redacted },
      { type: 'tool_call', id: 'tooluse_1', name: 'get_weather', arguments: '{"city":"Oslo"}' },
    ]);
    expect(answer).toMatchObject({ id: 'chatcmpl-b7f1c6a2-0000-4000-8000-000000000002', model: CLAUDE, finishReason: 'tool_calls' });
  });

  it('names the stop sequence Claude matched, from the model’s own response fields', async () => {
    route(standIn, { converse: jsonReply({ ...TEXT_RESPONSE, stopReason: 'stop_sequence', additionalModelResponseFields: { stop_sequence: 'END' } }) });
    expect(await provider.answer(answerCall(hi, { stop: ['END'] }))).toMatchObject({ finishReason: 'stop_sequence', stopSequence: 'END' });
  });
});

/** Answers Bedrock can give: parts of every kind, a stop reason that fits them, usage with every class Converse reports. */
const bedrockAnswers = fc
  .tuple(
    answerOf(
      fc.array(fc.oneof(textPart, reasoningPart.filter((p) => p.redactedData === undefined || Buffer.from(p.redactedData, 'base64').toString('base64') === p.redactedData), toolCallPart), { maxLength: 5 }),
      fc.constantFrom<FinishReason>('stop', 'stop_sequence', 'length', 'refusal'),
      usage({ serverTools: false, reasoning: false, tiers: ['default', 'priority', 'flex'] }),
    ),
    fc.boolean(),
  )
  .map(([a, toolTurn]) => {
    const calls = a.parts.some((p) => p.type === 'tool_call');
    // Claude's tool-call turns end with tool_use; a turn without calls never does.
    const finishReason: FinishReason = calls && toolTurn ? 'tool_calls' : a.finishReason;
    return { ...a, finishReason };
  });
const STOP_REASON: Record<FinishReason, string> = { stop: 'end_turn', stop_sequence: 'stop_sequence', length: 'max_tokens', tool_calls: 'tool_use', refusal: 'content_filtered', pause: 'end_turn' };

describe('bedrock answer provider: property — what Bedrock sends is what the events add up to', () => {
  it('streams: every part, the finish reason and every usage class survive the trip through ConverseStream', async () => {
    await fc.assert(
      fc.asyncProperty(bedrockAnswers, async (expected) => {
        route(standIn, { stream: eventStreamReply(converseStreamOf(expected, STOP_REASON[expected.finishReason])) });
        const events: AnswerEvent[] = await collect(await provider.answerStream(answerCall(hi, { tools: [WEATHER] })));
        expect(comparable(collectAnswer(events))).toEqual(comparable(expected));
      }),
      { numRuns: 40 },
    );
  });

  it('JSON: the same answers through Converse', async () => {
    await fc.assert(
      fc.asyncProperty(bedrockAnswers, async (expected) => {
        route(standIn, { converse: jsonReply(converseResponseOf(expected, STOP_REASON[expected.finishReason])) });
        expect(comparable(await provider.answer(answerCall(hi, { tools: [WEATHER] })))).toEqual(comparable(expected));
      }),
      { numRuns: 40 },
    );
  });
});

describe('bedrock answer provider: failures', () => {
  it.each([
    [429, 'ThrottlingException', 503, 'server_overloaded', true],
    [400, 'ValidationException', 400, 'invalid_value', false],
    [403, 'AccessDeniedException', 502, 'upstream_error', true],
    [500, 'InternalServerException', 502, 'upstream_error', true],
    [408, 'ModelTimeoutException', 504, 'upstream_timeout', true],
  ] as const)('maps HTTP %i %s to %i %s, fallback %s, in JSON and streams', async (status, errorType, expected, code, fallback) => {
    const reply = errorReply(status, errorType, `${errorType} from the stand-in`);
    route(standIn, { converse: reply, stream: reply });
    for (const attempt of [() => provider.answer(answerCall()), () => provider.answerStream(answerCall())]) {
      expect(await thrown(attempt)).toMatchObject({ status: expected, code, fallback });
    }
  });

  it('falls back when a throttling exception is the first stream event', async () => {
    route(standIn, { stream: eventStreamReply([], [exceptionFrame('throttlingException', 'Too many requests.')]) });
    expect(await thrown(() => provider.answerStream(answerCall()))).toMatchObject({ status: 503, code: 'server_overloaded', fallback: true });
  });

  it('mid-stream: the thinking and text delivered come out, then a 502 GatewayError', async () => {
    route(standIn, { stream: eventStreamReply(THINKING_STREAM.slice(0, 6), [exceptionFrame('modelStreamErrorException', 'The model stream broke.')]) });
    const seen: AnswerEvent[] = [];
    const err = await thrown(async () => {
      for await (const event of await provider.answerStream(answerCall())) seen.push(event);
    });
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ status: 502 });
    expect(collectAnswer(seen).parts).toEqual([
      { type: 'reasoning', text: 'The user greets; greet back.', signature: 'EqQBCkgIARABGAIiQL2signature' },
      { type: 'text', text: 'Hello!' },
    ]);
  });

  it('a stream cut before messageStop is a failure, not an answer', async () => {
    route(standIn, { stream: eventStreamReply(THINKING_STREAM.slice(0, 4)) });
    const stream = await provider.answerStream(answerCall());
    expect(await thrown(() => collect(stream))).toMatchObject({ status: 502 });
  });

  it('504 with fallback when Bedrock sends no headers in time; 504 when the stream goes silent', async () => {
    standIn.handler = () => ({ hang: 'before_headers' });
    expect(await thrown(() => provider.answerStream(answerCall(hi, {}, { timeouts: { firstByteMs: 150 } })))).toMatchObject({ status: 504, code: 'upstream_timeout', fallback: true });
    expect(await thrown(() => provider.answer(answerCall(hi, {}, { timeouts: { totalMs: 150 } })))).toMatchObject({ status: 504, code: 'upstream_timeout', fallback: true });
    standIn.handler = () => ({ ...eventStreamReply(THINKING_STREAM.slice(0, 3)), hang: 'after_parts' });
    const stream = await provider.answerStream(answerCall(hi, {}, { timeouts: { idleMs: 150 } }));
    expect(await thrown(() => collect(stream))).toMatchObject({ status: 504, code: 'upstream_timeout' });
  });

  it('a client that goes away mid-stream ends the upstream call, and the iterator says the request was cancelled', async () => {
    standIn.handler = () => ({ ...eventStreamReply(THINKING_STREAM.slice(0, 3)), hang: 'after_parts' });
    const client = new AbortController();
    const stream = await provider.answerStream(answerCall(hi, {}, { signal: client.signal, timeouts: { idleMs: 5_000 } }));
    const seen: AnswerEvent[] = [];
    const err = await thrown(async () => {
      for await (const event of stream) {
        seen.push(event);
        if (seen.length === 2) client.abort();
      }
    });
    // What was already read may still come out; never an end the upstream did not send.
    expect(seen.slice(0, 2).map((e) => e.type)).toEqual(['start', 'reasoning']);
    expect(seen.map((e) => e.type)).not.toContain('finish');
    expect(err).toMatchObject({ status: 502, message: 'The request was cancelled.' });
  });
});
