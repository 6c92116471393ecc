import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MessagesEventDecoder,
  MessagesEventEncoder,
  decodeMessagesAnswer,
  decodeMessagesRequest,
  encodeMessagesAnswer,
  encodeMessagesRequest,
  messagesFrame,
  messagesStreamTerminals,
  type MessagesWireRequest,
} from '../../lambda/codecs/anthropic-messages';
import { encodeChatRequest } from '../../lambda/codecs/openai-chat';
import { answerEvents, collectAnswer, type Answer, type AnswerEvent } from '../../lambda/core/answer';
import { callFor, heldOutputLimit, type Call } from '../../lambda/core/call';
import type { AssistantPart, Turn, UserPart } from '../../lambda/core/prompt';
import { sseFrameText } from '../../lambda/core/sse';
import type { MessagesRequest } from '../../lambda/messages/request';
import { answer, id, reasoningPart, signature, text, textPart, toolArguments, toolCallPart, toolName, usage, word } from './arbitraries';

const RECORDED = JSON.parse(readFileSync(join(__dirname, '../e2e/fixtures/claude-code-2.1.197-requests.json'), 'utf8')) as {
  requests: Array<{ method: string; body: unknown }>;
  gpt_model_turn1: { body: MessagesWireRequest };
};
const claudeCode: MessagesWireRequest[] = [
  ...RECORDED.requests.filter((r) => r.method === 'POST').map((r) => r.body as MessagesWireRequest),
  RECORDED.gpt_model_turn1.body,
];

const cache = fc.option(fc.record({ ttl: fc.constantFrom('5m' as const, '1h' as const) }, { requiredKeys: [] }), { nil: undefined });
const withCache = <T extends object>(part: T, mark: { ttl?: '5m' | '1h' } | undefined): T => (mark ? { ...part, cache: mark } : part);

const userPart: fc.Arbitrary<UserPart> = fc.oneof(
  fc.tuple(text, cache).map(([t, c]) => withCache({ type: 'text' as const, text: t }, c)),
  fc.record({ type: fc.constant('image' as const), source: fc.oneof(
    fc.record({ kind: fc.constant('base64' as const), mediaType: fc.constantFrom('image/png', 'image/jpeg'), data: signature }),
    fc.record({ kind: fc.constant('url' as const), url: word.map((w) => `https://example.com/${w}.png`) }),
    fc.record({ kind: fc.constant('file' as const), fileId: id }),
  ) }),
  fc.record({ type: fc.constant('document' as const), source: fc.oneof(
    fc.record({ kind: fc.constant('base64' as const), mediaType: fc.constant('application/pdf'), data: signature }),
    fc.record({ kind: fc.constant('text' as const), text }),
  ), title: word }, { requiredKeys: ['type', 'source'] }),
  fc.record({ type: fc.constant('tool_result' as const), toolCallId: id, content: fc.array(fc.record({ type: fc.constant('text' as const), text }), { maxLength: 3 }), isError: fc.boolean() }, { requiredKeys: ['type', 'toolCallId', 'content'] }),
);
const assistantPart: fc.Arbitrary<AssistantPart> = fc.oneof(textPart, reasoningPart, toolCallPart.map(({ type, id, name, arguments: a }) => ({ type, id, name, arguments: a })));
const turn: fc.Arbitrary<Turn> = fc.oneof(
  fc.record({ role: fc.constant('user' as const), parts: fc.array(userPart, { minLength: 1, maxLength: 4 }) }),
  fc.record({ role: fc.constant('assistant' as const), parts: fc.array(assistantPart, { minLength: 1, maxLength: 4 }) }),
  fc.record({ role: fc.constant('system' as const), parts: fc.array(textPart, { minLength: 1, maxLength: 2 }) }),
);

/** Calls in the part of the canonical model a Messages request carries without loss. */
const messagesCall: fc.Arbitrary<Call> = fc
  .record({
    system: fc.array(fc.tuple(text, cache).map(([t, c]) => withCache({ type: 'text' as const, text: t }, c)), { maxLength: 2 }),
    turns: fc.array(turn, { minLength: 1, maxLength: 5 }),
    model: word,
    stream: fc.boolean(),
    max: fc.integer({ min: 2_048, max: 64_000 }),
    temperature: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
    topK: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
    stop: fc.option(fc.array(word, { minLength: 1, maxLength: 6 }), { nil: undefined }),
    tools: fc.array(fc.oneof(
      fc.record({ kind: fc.constant('function' as const), name: toolName, description: text, parameters: fc.constant({ type: 'object', properties: {} }), strict: fc.boolean() }, { requiredKeys: ['kind', 'name', 'parameters'] }),
      fc.record({ kind: fc.constant('provider' as const), wire: fc.constant('anthropic-messages' as const), type: fc.constant('web_search_20250305'), name: fc.constant('web_search') })
        .map((t) => ({ ...t, fields: { type: t.type, name: t.name, max_uses: 3 } })),
    ), { maxLength: 3 }),
    choice: fc.option(fc.oneof(fc.constant({ type: 'auto' as const }), fc.constant({ type: 'required' as const }), fc.constant({ type: 'none' as const }), toolName.map((name) => ({ type: 'tool' as const, name }))), { nil: undefined }),
    noParallel: fc.boolean(),
    reasoning: fc.option(fc.oneof(
      fc.record({ mode: fc.constantFrom('adaptive' as const, 'disabled' as const), effort: fc.constantFrom('low' as const, 'high' as const) }, { requiredKeys: ['mode'] }),
      fc.record({ mode: fc.constant('enabled' as const), budgetTokens: fc.integer({ min: 1_024, max: 2_047 }), effort: fc.constantFrom('medium' as const) }, { requiredKeys: ['mode', 'budgetTokens'] }),
    ), { nil: undefined }),
    schema: fc.option(fc.constant({ type: 'object' }), { nil: undefined }),
    serviceTier: fc.option(fc.constantFrom('auto', 'standard_only'), { nil: undefined }),
    extensions: fc.option(fc.constant({ wire: 'anthropic-messages' as const, fields: { context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] } } }), { nil: undefined }),
  })
  .map((g): Call => {
    const parallel = g.noParallel && g.choice && g.choice.type !== 'none' ? { parallelToolCalls: false } : {};
    return {
      prompt: { system: g.system, turns: g.turns },
      settings: {
        model: g.model,
        stream: g.stream,
        maxOutputTokens: heldOutputLimit(g.max),
        tools: g.tools,
        ...(g.temperature !== undefined && { temperature: g.temperature }),
        ...(g.topK !== undefined && { topK: g.topK }),
        ...(g.stop && { stop: g.stop }),
        ...(g.choice && { toolChoice: g.choice }),
        ...parallel,
        ...(g.reasoning && { reasoning: g.reasoning }),
        ...(g.schema && { responseFormat: { type: 'json_schema' as const, name: 'output', schema: g.schema } }),
        ...(g.serviceTier && { serviceTier: g.serviceTier }),
        ...(g.extensions && { extensions: g.extensions }),
      },
    };
  });

function decodedOf(call: Call) {
  const { maxOutputTokens, ...rest } = call.settings;
  return { prompt: call.prompt, options: { ...rest, outputLimit: maxOutputTokens } };
}

const messagesAnswer = answer(
  fc.array(fc.oneof(textPart, reasoningPart, toolCallPart), { maxLength: 6 }),
  fc.constantFrom('stop', 'stop_sequence', 'length', 'tool_calls', 'refusal', 'pause'),
  usage(),
);

function streamed(a: Answer): { events: ReturnType<MessagesEventEncoder['push']>; back: Answer } {
  const encoder = new MessagesEventEncoder();
  const events = [...answerEvents(a).flatMap((e) => encoder.push(e)), ...encoder.end()];
  const decoder = new MessagesEventDecoder();
  const back: AnswerEvent[] = events.flatMap((e) => decoder.push(JSON.parse(JSON.stringify(e))));
  decoder.end();
  return { events, back: collectAnswer(back) };
}

describe('the Anthropic Messages codec: requests', () => {
  it('decodes what it encodes for a provider (decode ∘ encode = identity)', () => {
    fc.assert(fc.property(messagesCall, (call) => {
      const wire = JSON.parse(JSON.stringify(encodeMessagesRequest(call))) as MessagesWireRequest;
      expect(decodeMessagesRequest(wire)).toEqual(decodedOf(call));
    }), { numRuns: 300 });
  });

  it("re-encodes Claude Code's recorded requests to Anthropic unchanged", () => {
    for (const request of claudeCode) {
      const decoded = decodeMessagesRequest(request);
      const again = encodeMessagesRequest(callFor(decoded, heldOutputLimit(request.max_tokens)));
      // An empty `tools: []` and no tools are the same request.
      const { tools, ...rest } = request;
      expect(again).toEqual(tools?.length ? request : rest);
    }
  });

  it('sends the thinking of a tool-call turn back unchanged, in order ahead of tool_use, with thinking on', () => {
    const continuation = claudeCode[2];
    const assistant = continuation.messages.find((m) => m.role === 'assistant')!;
    const decoded = decodeMessagesRequest(continuation);
    // The same turn reached through an effort alone (a Chat or Responses client): thinking is kept on.
    const call = callFor({ ...decoded, options: { ...decoded.options, reasoning: { mode: 'enabled', effort: 'high' } } }, heldOutputLimit(32_000));
    const body = encodeMessagesRequest(call);
    expect(body.messages.find((m) => m.role === 'assistant')!.content).toEqual(assistant.content);
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 16_384 });

    // Without its signed thinking, Anthropic would refuse thinking on a tool-call turn: it is left off.
    const unsigned = { ...call, prompt: { ...call.prompt, turns: call.prompt.turns.map((t) => (t.role === 'assistant' ? { ...t, parts: t.parts.filter((p) => p.type !== 'reasoning') } : t)) } };
    expect(encodeMessagesRequest(unsigned).thinking).toBeUndefined();
  });

  it('keeps the cache marks and every block kind it has no canonical form for', () => {
    const request: MessagesWireRequest = {
      model: 'claude', max_tokens: 100,
      system: [{ type: 'text', text: 'sys', cache_control: { type: 'ephemeral', ttl: '1h' } }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'q', cache_control: { type: 'ephemeral' } }] },
        { role: 'assistant', content: [{ type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'x' } }, { type: 'text', text: 'a' }] },
      ],
    } as MessagesWireRequest;
    const decoded = decodeMessagesRequest(request);
    expect(decoded.prompt.system).toEqual([{ type: 'text', text: 'sys', cache: { ttl: '1h' } }]);
    expect(decoded.prompt.turns[0].parts[0]).toEqual({ type: 'text', text: 'q', cache: {} });
    expect(encodeMessagesRequest(callFor(decoded, heldOutputLimit(100)))).toEqual(request);
  });
});

describe('the Anthropic Messages codec: answers', () => {
  it('decodes the whole answers it encodes', () => {
    fc.assert(fc.property(messagesAnswer, (a) => {
      const back = decodeMessagesAnswer(JSON.parse(JSON.stringify(encodeMessagesAnswer(a))));
      expect({ ...back, createdS: a.createdS }).toEqual(a);
    }), { numRuns: 300 });
  });

  it('decodes the stream events it encodes into the same answer', () => {
    fc.assert(fc.property(messagesAnswer, (a) => {
      const { back } = streamed(a);
      expect({ ...back, createdS: a.createdS }).toEqual(a);
    }), { numRuns: 300 });
  });

  it('streams blocks with contiguous indices, one open at a time, and ends with message_delta and message_stop', () => {
    fc.assert(fc.property(messagesAnswer, (a) => {
      const { events } = streamed(a);
      expect(events.slice(0, 2).map((e) => e.type)).toEqual(['message_start', 'ping']);
      expect(events.slice(-2).map((e) => e.type)).toEqual(['message_delta', 'message_stop']);
      let open: number | undefined;
      let next = 0;
      for (const e of events) {
        if (e.type === 'content_block_start') {
          expect(open).toBeUndefined();
          expect(e.index).toBe(next++);
          open = e.index;
        } else if (e.type === 'content_block_delta') expect(e.index).toBe(open);
        else if (e.type === 'content_block_stop') {
          expect(e.index).toBe(open);
          open = undefined;
        }
      }
      expect(open).toBeUndefined();
    }), { numRuns: 200 });
  });

  it('reports every billed usage class: writes by lifetime, reads, server tools, the tier', () => {
    const a: Answer = { id: 'msg_1', model: 'claude', createdS: 1, parts: [{ type: 'text', text: 'hi' }], finishReason: 'stop', usage: { inputTokens: 3, cacheReadTokens: 50, cacheWriteTokens: 100, cacheWrite1hTokens: 20, outputTokens: 9, serverToolCalls: { web_search: 2 }, serviceTier: 'priority' } };
    expect(encodeMessagesAnswer(a).usage).toEqual({
      input_tokens: 3, output_tokens: 9, cache_creation_input_tokens: 120, cache_read_input_tokens: 50,
      cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 20 },
      server_tool_use: { web_search_requests: 2, web_fetch_requests: 0 }, service_tier: 'priority',
    });
    // An upstream with no lifetime split: all writes are 5-minute writes.
    expect(decodeMessagesAnswer({ id: 'm', model: 'c', content: [], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1, cache_creation_input_tokens: 100, cache_read_input_tokens: 0 } }).usage)
      .toMatchObject({ cacheWriteTokens: 100, cacheWrite1hTokens: 0 });
  });

  it('fails a stream cut before message_stop, and turns an error event into a StreamErrorEvent', () => {
    const decoder = new MessagesEventDecoder();
    decoder.push({ type: 'message_start', message: { id: 'm', model: 'c', usage: { input_tokens: 1, output_tokens: 0 } } } as never);
    expect(() => decoder.end()).toThrow(/before message_stop/);
    expect(() => decoder.push({ type: 'error', error: { type: 'overloaded_error', message: 'busy' } })).toThrow(expect.objectContaining({ name: 'StreamErrorEvent', errorType: 'overloaded_error' }));
  });

  it('refuses to interleave two tool calls, which Anthropic cannot carry', () => {
    const encoder = new MessagesEventEncoder();
    encoder.push({ type: 'start', id: 'm', model: 'c' });
    encoder.push({ type: 'tool_call_start', index: 0, id: 'a', name: 'f' });
    encoder.push({ type: 'tool_call_start', index: 1, id: 'b', name: 'g' });
    expect(() => encoder.push({ type: 'tool_call_delta', index: 0, arguments: '{}' })).toThrow(/interleaved/);
  });

  it('frames events with their type as the SSE event name, and a failure as an error event', () => {
    expect(sseFrameText(messagesFrame({ type: 'message_stop' }))).toBe('event: message_stop\ndata: {"type":"message_stop"}\n\n');
    expect(messagesStreamTerminals.failed({ status: 503, type: 'server_overloaded', code: 'x', param: null, message: 'busy' }).map(sseFrameText))
      .toEqual(['event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n']);
    expect(messagesStreamTerminals.ended()).toEqual([]);
  });
});

/** Chat user messages with one text part written as a plain string (the same message to an upstream). */
function plainUserText(request: Record<string, unknown>): Record<string, unknown> {
  const messages = (request.messages as Array<{ role: string; content: unknown }>).map((m) => {
    const c = m.content;
    if (m.role === 'user' && Array.isArray(c) && c.length === 1 && (c[0] as { type: string }).type === 'text') return { ...m, content: (c[0] as { text: string }).text };
    return m;
  });
  return { ...request, messages };
}
