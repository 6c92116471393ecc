import fc from 'fast-check';
import { GatewayError, insufficientQuota, invalidRequest, modelNotAllowed, modelNotFound, rateLimited, requestTooLarge, serverOverloaded, upstreamError, upstreamTimeout, internalError, invalidApiKey } from '../../lambda/contract/errors';
import type { ChatCompletionChunk } from '../../lambda/contract/openai';
import { anthropicErrorType } from '../../lambda/messages/errors';
import { ChatChunkDecoder, encodeChatRequest } from '../../lambda/codecs/openai-chat';
import { decodeMessagesRequest, MessagesEventEncoder, type MessagesWireRequest } from '../../lambda/codecs/anthropic-messages';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import type { MessagesRequest } from '../../lambda/messages/request';
import { callForRoute } from '../../lambda/messages/create';
import { parseCountTokensRequest, parseMessagesRequest } from '../../lambda/messages/request';
import { estimateMessagesPromptTokens } from '../../lambda/messages/tokens';
import { warmTokenizer } from '../../lambda/money/tokens';
import type { TokenRules } from '../../lambda/catalog';

const CLAUDE_RULES: TokenRules = { image: { kind: 'anthropic' }, textMargin: 1.25 };
const base = { model: 'm', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] };

function rejection(body: unknown): GatewayError {
  try {
    parseMessagesRequest(body);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a 400');
}

describe('parseMessagesRequest', () => {
  it('names the offending field first in the message, as Anthropic does', () => {
    expect(rejection({ ...base, max_tokens: undefined }).message).toBe('max_tokens: Field required');
    expect(rejection({ ...base, messages: [{ role: 'tool', content: 'x' }] }).message).toMatch(/^messages\[0\]\.role: /);
    expect(rejection({ ...base, messages: [{ role: 'user', content: [{ type: 'text' }] }] }).message).toBe('messages[0].content[0].text: Field required');
    expect(rejection({ ...base, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: [{ type: 'text', text: 1 }] }] }] }).message).toMatch(
      /^messages\[0\]\.content\[0\]\.content\[0\]\.text: Input should be of type string/,
    );
    expect(rejection({ ...base, tools: [{ name: 'f' }] }).message).toBe('tools[0].input_schema: Field required');
    expect(rejection({ ...base, temperature: 1.5 }).status).toBe(400);
    expect(rejection([]).message).toBe('The request body must be a JSON object.');
  });

  it('keeps block types and fields it does not read, and Anthropic-defined tools without a schema', () => {
    const request = parseMessagesRequest({
      ...base,
      tools: [{ type: 'bash_20250124', name: 'bash' }],
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'doc' }, citations: { enabled: true } }] }],
      context_management: { edits: [] },
    });
    expect(request.messages[0].content).toEqual([{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'doc' }, citations: { enabled: true } }]);
    expect(request.context_management).toEqual({ edits: [] });
  });

  it('count_tokens needs no max_tokens', () => {
    expect(parseCountTokensRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).model).toBe('m');
  });
});

/** Every field Chat Completions knows: nothing else may reach an OpenAI-compatible upstream. */
const CHAT_FIELDS = new Set(['model', 'messages', 'max_completion_tokens', 'stream', 'temperature', 'top_p', 'stop', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format']);

/** What an OpenAI-compatible route is sent for a Messages request: the Messages codec's call, as the Chat codec writes it (thinking fields off). */
function messagesToChat(request: MessagesRequest, model: string) {
  const decoded = decodeMessagesRequest({ ...request, model } as unknown as MessagesWireRequest);
  return encodeChatRequest(callForRoute(callFor(decoded, heldOutputLimit(request.max_tokens)), 'openai-compatible'));
}

describe('a Messages request on a Chat Completions route', () => {
  it('never lets a Claude-only field through, whatever else the request carries', () => {
    const claudeOnly = fc.record(
      {
        thinking: fc.constantFrom({ type: 'adaptive' }, { type: 'enabled', budget_tokens: 2000 }, { type: 'disabled' }),
        context_management: fc.constant({ edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] }),
        output_config: fc.constantFrom({ effort: 'high' }, { effort: 'max', format: { type: 'json_schema', schema: { type: 'object' } } }),
        top_k: fc.integer({ min: 0, max: 50 }),
        metadata: fc.constant({ user_id: '{"device_id":"x"}' }),
        service_tier: fc.constant('auto'),
        container: fc.constant('c1'),
        mcp_servers: fc.constant([{ type: 'url', url: 'https://example.com', name: 'x' }]),
        cache_control: fc.constant({ type: 'ephemeral' }),
        inference_geo: fc.constant('us'),
      },
      { requiredKeys: [] },
    );
    const block = fc.constantFrom<Record<string, unknown>>(
      { type: 'text', text: 'a', cache_control: { type: 'ephemeral' }, citations: [] },
      { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' }, cache_control: { type: 'ephemeral' } },
      { type: 'thinking', thinking: 'hmm', signature: 'sig' },
      { type: 'redacted_thinking', data: 'opaque' },
    );
    fc.assert(
      fc.property(claudeOnly, fc.array(block, { minLength: 1, maxLength: 4 }), (extra, blocks) => {
        const request = parseMessagesRequest({
          ...base,
          ...extra,
          system: [{ type: 'text', text: 'sys', cache_control: { type: 'ephemeral' } }],
          tools: [
            { name: 'f', input_schema: { type: 'object' }, cache_control: { type: 'ephemeral' }, defer_loading: true, eager_input_streaming: true },
            { type: 'web_search_20250305', name: 'web_search' },
          ],
          messages: [
            { role: 'user', content: blocks },
            { role: 'assistant', content: [{ type: 'thinking', thinking: 't', signature: 's' }, { type: 'tool_use', id: 'toolu_1', name: 'f', input: {}, cache_control: { type: 'ephemeral' } }] },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'r', cache_control: { type: 'ephemeral' } }] },
            { role: 'system', content: 'mid' },
          ],
        });
        const { request: chat, droppedTools } = messagesToChat(request, 'm');
        for (const key of Object.keys(chat)) expect(CHAT_FIELDS.has(key)).toBe(true);
        const text = JSON.stringify(chat);
        for (const word of ['cache_control', 'citations', 'signature', 'thinking', 'defer_loading', 'eager_input_streaming', 'web_search', 'ephemeral']) expect(text).not.toContain(word);
        expect(droppedTools).toEqual(['web_search']);
      }),
      { numRuns: 200 },
    );
  });

  it('puts system prompts where they were, tool results right after the calls, and maps tool_choice', () => {
    const { request } = messagesToChat(
      parseMessagesRequest({
        ...base,
        system: 'top',
        tools: [{ name: 'f', input_schema: { type: 'object' } }],
        tool_choice: { type: 'any', disable_parallel_tool_use: true },
        stop_sequences: ['x', 'y'],
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'text', text: 'calling' }, { type: 'tool_use', id: 'toolu_9', name: 'f', input: { a: 1 } }] },
          { role: 'user', content: [{ type: 'text', text: 'and also' }, { type: 'tool_result', tool_use_id: 'toolu_9', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] }] },
          { role: 'system', content: [{ type: 'text', text: 'mid' }] },
        ],
      }),
      'm',
    );
    expect(request.messages).toEqual([
      { role: 'system', content: 'top' },
      { role: 'user', content: 'go' },
      { role: 'assistant', content: 'calling', tool_calls: [{ id: 'toolu_9', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      { role: 'tool', tool_call_id: 'toolu_9', content: 'one\ntwo' },
      { role: 'user', content: 'and also' },
      { role: 'system', content: 'mid' },
    ]);
    expect(request.tool_choice).toBe('required');
    expect(request.parallel_tool_calls).toBe(false);
    expect(request.stop).toEqual(['x', 'y']);
  });

  it('keeps what a Chat Completions route cannot take as a 400 for that route only, naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ stop_sequences: ['a', 'b', 'c', 'd', 'e'] }, 'stop_sequences'],
      [{ tools: [{ name: 'x'.repeat(65), input_schema: {} }] }, 'tools[0].name'],
      [{ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBER' } }] }] }, 'messages[0].content[0]'],
      [{ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_1' } }] }] }, 'messages[0].content[0].source'],
      [{ tools: [{ type: 'bash_20250124', name: 'bash' }], tool_choice: { type: 'tool', name: 'bash' } }, 'tool_choice'],
    ];
    for (const [extra, param] of cases) {
      const { unsupported } = messagesToChat(parseMessagesRequest({ ...base, ...extra }), 'm');
      expect(unsupported?.status).toBe(400);
      expect(unsupported?.param).toBe(param);
    }
    expect(messagesToChat(parseMessagesRequest(base), 'm').unsupported).toBeUndefined();
  });
});

const chunk = (delta: Record<string, unknown>, finish: string | null = null): ChatCompletionChunk => ({
  id: 'c',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'm',
  choices: [{ index: 0, delta, finish_reason: finish as ChatCompletionChunk.Choice['finish_reason'], logprobs: null }],
});

/** Chat chunks → answer events → Messages events, as `/v1/messages` writes a chat-chunk route's stream. */
function chunksToMessageEvents(estimate: number) {
  const decoder = new ChatChunkDecoder();
  const encoder = new MessagesEventEncoder(estimate);
  return { push: (c: ChatCompletionChunk) => decoder.push(c).flatMap((e) => encoder.push(e)), finish: () => encoder.end() };
}

describe('chat chunks as Messages events', () => {
  it('closes a tool block before text opens the next index, and ends with the stop reason and estimated usage when none came', () => {
    const t = chunksToMessageEvents(42);
    const events = [
      ...t.push(chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] })),
      ...t.push(chunk({ content: 'after' })),
      ...t.push(chunk({}, 'tool_calls')),
      ...t.finish(),
    ];
    expect(events.map((e) => [e.type, 'index' in e ? e.index : undefined])).toEqual([
      ['message_start', undefined],
      ['ping', undefined],
      ['content_block_start', 0],
      ['content_block_delta', 0],
      ['content_block_stop', 0],
      ['content_block_start', 1],
      ['content_block_delta', 1],
      ['content_block_stop', 1],
      ['message_delta', undefined],
      ['message_stop', undefined],
    ]);
    expect(events.at(-2)).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: { input_tokens: 42, output_tokens: 2 } });
  });

  it('refuses arguments for a tool call whose block is already closed (an Anthropic stream cannot reopen it)', () => {
    const t = chunksToMessageEvents(1);
    t.push(chunk({ tool_calls: [{ index: 0, id: 'a', type: 'function', function: { name: 'f', arguments: '' } }] }));
    t.push(chunk({ tool_calls: [{ index: 1, id: 'b', type: 'function', function: { name: 'g', arguments: '' } }] }));
    expect(() => t.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '{}' } }] }))).toThrow(/interleaved/);
  });
});

describe('estimateMessagesPromptTokens', () => {
  beforeAll(() => warmTokenizer());

  it('counts system, tools, tool calls and results, thinking and images by the model’s rule', () => {
    const bare = estimateMessagesPromptTokens(parseCountTokensRequest({ model: 'm', messages: [{ role: 'user', content: 'Hello' }] }), CLAUDE_RULES);
    const withSystem = estimateMessagesPromptTokens(parseCountTokensRequest({ model: 'm', system: 'word '.repeat(100), messages: [{ role: 'user', content: 'Hello' }] }), CLAUDE_RULES);
    expect(withSystem - bare).toBeGreaterThanOrEqual(100);
    // A 1000×1000 PNG header: Anthropic counts 1000·1000/750 = 1334 tokens.
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.from([0, 0, 3, 232, 0, 0, 3, 232, 8, 6, 0, 0, 0])]).toString('base64');
    const withImage = estimateMessagesPromptTokens(
      parseCountTokensRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }] }] }),
      CLAUDE_RULES,
    );
    expect(withImage - bare).toBe(1334);
    const history = estimateMessagesPromptTokens(
      parseCountTokensRequest({
        model: 'm',
        messages: [
          { role: 'user', content: 'Hello' },
          { role: 'assistant', content: [{ type: 'thinking', thinking: 'think '.repeat(50), signature: 's' }, { type: 'tool_use', id: 't', name: 'f', input: { q: 'x '.repeat(50) } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'result '.repeat(50) }] },
        ],
      }),
      CLAUDE_RULES,
    );
    expect(history - bare).toBeGreaterThanOrEqual(150 * 1.25);
  });
});

describe('anthropicErrorType', () => {
  it('gives each of the gateway’s errors Anthropic’s type for its status', () => {
    const table: Array<[GatewayError, string]> = [
      [invalidRequest('x'), 'invalid_request_error'],
      [invalidApiKey(), 'authentication_error'],
      [insufficientQuota('x'), 'billing_error'],
      [modelNotAllowed('m'), 'permission_error'],
      [modelNotFound('m'), 'not_found_error'],
      [requestTooLarge(10), 'request_too_large'],
      [rateLimited('x', 1000), 'rate_limit_error'],
      [internalError(), 'api_error'],
      [upstreamError('x'), 'api_error'],
      [serverOverloaded('x'), 'overloaded_error'],
      [upstreamTimeout('x'), 'timeout_error'],
      [new GatewayError(415, 'invalid_request_error', 'unsupported_content_type', 'x'), 'invalid_request_error'],
    ];
    for (const [error, type] of table) expect([error.status, anthropicErrorType(error)]).toEqual([error.status, type]);
  });
});
