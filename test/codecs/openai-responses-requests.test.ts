import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { decodeResponsesRequest, encodeResponsesRequest, responsesOutput, type ResponsesItem } from '../../lambda/codecs/openai-responses';
import { decodeChatRequest, encodeChatRequest } from '../../lambda/codecs/openai-chat';
import { decodeMessagesAnswer, encodeMessagesRequest } from '../../lambda/codecs/anthropic-messages';
import { callFor, heldOutputLimit, type Call } from '../../lambda/core/call';
import type { AssistantPart, Turn, UserPart } from '../../lambda/core/prompt';
import { GatewayError } from '../../lambda/contract/errors';
import type { ChatMessage } from '../../lambda/contract/request';
import { parseCreateResponseRequest } from '../../lambda/contract/responses';
import { headerWord } from '../../lambda/chat/pipeline';
import { id, signature, text, textPart, toolArguments, toolCallPart, toolName, word } from './arbitraries';

const CODEX = JSON.parse(readFileSync(join(__dirname, '../responses/fixtures/codex-requests.json'), 'utf8')) as Record<'turn1' | 'turn2', { body: Record<string, unknown> }>;
const LIMIT = 4_096;

/**
 * The Chat request the Responses endpoint sent before the codec (responses/items.ts +
 * responses/chat-request.ts, deleted in issue 18 step 4) for each Codex fixture, recorded from
 * that code at its last commit (c7017a2), with and without a priced web search.
 */
const BEFORE = JSON.parse(readFileSync(join(__dirname, '../responses/fixtures/codex-chat-requests-before-codec.json'), 'utf8')) as Record<string, { chat: Record<string, unknown>; ignored: string[]; tools: unknown[] }>;

/** The new path: decodeResponsesRequest, then the Chat codec with the held output limit. */
function viaCodecs(body: unknown, webSearch: boolean) {
  const decoded = decodeResponsesRequest(parseCreateResponseRequest(body), {}, { webSearch });
  const { request, unsupported, droppedTools } = encodeChatRequest(callFor(decoded, heldOutputLimit(LIMIT)));
  return { chat: request as Record<string, unknown>, unsupported, droppedTools, ignored: decoded.ignored.map(headerWord), tools: decoded.tools };
}

/**
 * The intended differences between today's Chat request and the codecs' (docs/ARCHITECTURE.md,
 * "Responses codec: intended differences"), applied to today's so the rest must be equal:
 * 1. `max_completion_tokens` is always sent: the limit the hold paid for (`Call.settings.maxOutputTokens`).
 * 2. The instructions and the system/developer messages before the first turn are one system message
 *    (the canonical prompt's `system`), texts joined by a blank line; a system message of several
 *    texts is one string.
 * 3. `parallel_tool_calls` is sent only when false (true is OpenAI's default).
 * 4. Reasoning items are kept in the assistant turn (they reach Anthropic as thinking blocks; a Chat
 *    upstream gets none), so they are no longer named in `x-itapi-ignored` as `input:reasoning`.
 * 5. `stream: false` is not written (it is the default).
 */
function withIntendedDifferences(chat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...chat, max_completion_tokens: LIMIT };
  if (out.parallel_tool_calls === true) delete out.parallel_tool_calls;
  if (out.stream === false) delete out.stream;
  const messages = (chat.messages as ChatMessage[]).map((m) => (m.role === 'system' && Array.isArray(m.content) ? { ...m, content: m.content.map((p) => (p as { text: string }).text).join('\n\n') } : m));
  const first = messages.findIndex((m) => m.role !== 'system');
  const leading = messages.slice(0, first < 0 ? messages.length : first);
  out.messages = [...(leading.length ? [{ role: 'system', content: leading.map((m) => m.content as string).join('\n\n') }] : []), ...messages.slice(leading.length)];
  return out;
}

describe('decodeResponsesRequest + encodeChatRequest against the Chat request sent before the codec', () => {
  it.each(['turn1', 'turn2'] as const)('gives the upstream the same Chat request for Codex CLI %s (intended differences aside)', (turn) => {
    for (const webSearch of [false, true]) {
      const was = BEFORE[`${turn}${webSearch ? '+web_search' : ''}`];
      const now = viaCodecs(CODEX[turn].body, webSearch);
      expect(now.unsupported).toBeUndefined();
      expect(now.droppedTools).toEqual([]);
      expect(now.chat).toEqual(withIntendedDifferences(was.chat));
      expect(now.ignored).toEqual(was.ignored.filter((w) => w !== 'input:reasoning'));
      expect(now.tools).toEqual(was.tools);
      expect(now.chat.web_search_options !== undefined).toBe(webSearch);
    }
  });
});

// ---- decode ∘ encode ------------------------------------------------------------------------

const image = fc.record({
  type: fc.constant('image' as const),
  source: fc.oneof(
    fc.record({ kind: fc.constant('base64' as const), mediaType: fc.constant('image/png'), data: signature }),
    fc.record({ kind: fc.constant('url' as const), url: word.map((w) => `https://example.com/${w}.png`) }),
    fc.record({ kind: fc.constant('file' as const), fileId: id.map((i) => `file-${i}`) }),
  ),
  detail: fc.constantFrom('auto' as const, 'low' as const, 'high' as const),
});
const documentPart = fc.record({
  type: fc.constant('document' as const),
  source: fc.oneof(fc.record({ kind: fc.constant('base64' as const), mediaType: fc.constant('application/pdf'), data: signature }), fc.record({ kind: fc.constant('url' as const), url: word.map((w) => `https://example.com/${w}.pdf`) })),
  title: word,
}, { requiredKeys: ['type', 'source'] });
const toolResult = fc.record({ type: fc.constant('tool_result' as const), toolCallId: id, content: fc.oneof(fc.tuple(textPart), fc.array(fc.oneof(textPart, image), { minLength: 2, maxLength: 3 })) });
const openAiReasoning = fc.record({ type: fc.constant('reasoning' as const), text: fc.oneof(fc.constant(''), text), encryptedContent: signature, id: id.map((i) => `rs_${i}`) });

const userTurn: fc.Arbitrary<Turn> = fc
  .tuple(fc.array(toolResult, { maxLength: 2 }), fc.array(fc.oneof(textPart, image, documentPart), { maxLength: 3 }))
  .filter(([results, own]) => results.length + own.length > 0)
  .map(([results, own]) => ({ role: 'user' as const, parts: [...results, ...own] as UserPart[] }));
const assistantTurn: fc.Arbitrary<Turn> = fc
  .tuple(fc.array(openAiReasoning, { maxLength: 2 }), fc.array(textPart, { maxLength: 2 }), fc.array(toolCallPart, { maxLength: 2 }))
  .filter(([r, t, c]) => r.length + t.length + c.length > 0)
  .map(([r, t, c]) => ({ role: 'assistant' as const, parts: [...r, ...t, ...c] as AssistantPart[] }));
const systemTurn: fc.Arbitrary<Turn> = fc.array(textPart, { minLength: 1, maxLength: 2 }).map((parts) => ({ role: 'system' as const, parts }));

const responsesCall: fc.Arbitrary<Call> = fc.record({
  system: fc.array(textPart, { maxLength: 2 }),
  first: userTurn,
  rounds: fc.array(fc.tuple(fc.option(systemTurn, { nil: undefined }), assistantTurn, userTurn), { maxLength: 3 }),
  model: word,
  stream: fc.boolean(),
  max: fc.integer({ min: 1, max: 128_000 }),
  temperature: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
  tools: fc.uniqueArray(toolName, { maxLength: 3 }).map((names) => names.map((name) => ({ kind: 'function' as const, name, parameters: { type: 'object' } }))),
  choice: fc.constantFrom('auto' as const, 'required' as const, 'none' as const, 'first' as const, undefined),
  parallel: fc.option(fc.boolean(), { nil: undefined }),
  reasoning: fc.option(fc.oneof(fc.constant({ mode: 'disabled' as const, effort: 'none' as const }), fc.record({ mode: fc.constant('enabled' as const), effort: fc.constantFrom('low' as const, 'high' as const, 'max' as const), summary: fc.constantFrom('auto', 'detailed') }, { requiredKeys: ['mode', 'effort'] })), { nil: undefined }),
  verbosity: fc.constantFrom('low' as const, 'high' as const, undefined),
  user: fc.option(word, { nil: undefined }),
  store: fc.option(fc.boolean(), { nil: undefined }),
}).map((g): Call => {
  const choice = g.tools.length && g.choice ? (g.choice === 'first' ? { type: 'tool' as const, name: g.tools[0].name } : { type: g.choice }) : undefined;
  return {
    prompt: { system: g.system, turns: [g.first, ...g.rounds.flatMap(([s, a, u]) => [...(s ? [s] : []), a, u])] },
    settings: {
      model: g.model, stream: g.stream, maxOutputTokens: heldOutputLimit(g.max), tools: g.tools,
      ...(g.temperature !== undefined && { temperature: g.temperature }),
      ...(choice && { toolChoice: choice }),
      ...(g.parallel !== undefined && { parallelToolCalls: g.parallel }),
      ...(g.reasoning && { reasoning: g.reasoning }),
      ...(g.verbosity && { verbosity: g.verbosity }),
      ...(g.user !== undefined && { user: g.user }),
      ...(g.store !== undefined && { extensions: { wire: 'openai-responses' as const, fields: { store: g.store } } }),
    },
  };
});

describe('the Responses codec: requests', () => {
  it('decodes what it encodes (decode ∘ encode = identity) through the request schema', () => {
    fc.assert(fc.property(responsesCall, (call) => {
      const { request, unsupported } = encodeResponsesRequest(call);
      expect(unsupported).toBeUndefined();
      const decoded = decodeResponsesRequest(parseCreateResponseRequest(JSON.parse(JSON.stringify(request))));
      const { maxOutputTokens, ...options } = call.settings;
      expect({ prompt: decoded.prompt, options: decoded.options }).toEqual({ prompt: call.prompt, options: { ...options, outputLimit: maxOutputTokens } });
    }), { numRuns: 300 });
  });

  it("places reasoning items in the assistant turn ahead of the calls that followed them, and gives Claude its thinking back with thinking on", () => {
    const thinking = [{ type: 'thinking', thinking: 'List first.', signature: 'EqQBCkYIBxgC' }, { type: 'redacted_thinking', data: 'EmwKAhgB' }] as const;
    const upstream = decodeMessagesAnswer({ id: 'msg', model: 'claude', stop_reason: 'tool_use', content: [...thinking, { type: 'tool_use', id: 'toolu_1', name: 'exec_command', input: { cmd: 'ls' } }], usage: { input_tokens: 1, output_tokens: 1 } });
    // The output as Codex got it (include: reasoning.encrypted_content), sent back with the call's output.
    const items = JSON.parse(JSON.stringify(responsesOutput(upstream, { idFor: (p, i) => `${p}_${i}`, status: 'completed', includeEncrypted: true })));
    const body = { model: 'claude-test', reasoning: { effort: 'high', summary: 'auto' }, include: ['reasoning.encrypted_content'], store: false, input: [{ type: 'message', role: 'user', content: 'list files' }, ...items, { type: 'function_call_output', call_id: 'toolu_1', output: 'a.txt' }] };
    const decoded = decodeResponsesRequest(parseCreateResponseRequest(body));
    expect(decoded.prompt.turns.map((t) => t.role)).toEqual(['user', 'assistant', 'user']);
    expect(decoded.includeEncrypted).toBe(true);
    const messages = encodeMessagesRequest(callFor(decoded, heldOutputLimit(32_000)));
    expect(messages.messages[1]).toEqual({ role: 'assistant', content: [...thinking, { type: 'tool_use', id: 'toolu_1', name: 'exec_command', input: { cmd: 'ls' } }] });
    expect(messages.thinking).toEqual({ type: 'enabled', budget_tokens: 16_384 });
    // Through a previous response (the endpoint read it) or an item_reference, the same turn.
    const [first, ...rest] = body.input as ResponsesItem[];
    const viaPrevious = decodeResponsesRequest(parseCreateResponseRequest({ ...body, input: [rest[rest.length - 1]] }), { previous: [first, ...rest.slice(0, -1)] });
    expect(viaPrevious.prompt).toEqual(decoded.prompt);
    const references = new Map<string, ResponsesItem>(items.map((item: ResponsesItem & { id: string }) => [item.id, item]));
    const viaReference = decodeResponsesRequest(parseCreateResponseRequest({ ...body, input: [first, ...items.map((item: { id: string }) => ({ type: 'item_reference', id: item.id })), rest[rest.length - 1]] }), { references });
    expect(viaReference.prompt).toEqual(decoded.prompt);
  });

  it('keeps thinking between two calls in their one assistant turn, in order, and the calls in one Chat message', () => {
    const rs = (text: string) => ({ type: 'reasoning', summary: [{ type: 'summary_text', text }], encrypted_content: `enc-${text}`, id: `rs_${text}` });
    const fcall = (n: number) => ({ type: 'function_call', call_id: `c${n}`, name: 'f', arguments: '{}' });
    const decoded = decodeResponsesRequest(parseCreateResponseRequest({ model: 'm', input: [{ role: 'user', content: 'go' }, rs('a'), fcall(1), rs('b'), fcall(2), { type: 'function_call_output', call_id: 'c1', output: '1' }, { type: 'function_call_output', call_id: 'c2', output: '2' }, { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'done' }] }] }));
    expect(decoded.prompt.turns.map((t) => [t.role, t.parts.map((p) => p.type)])).toEqual([
      ['user', ['text']], ['assistant', ['reasoning', 'tool_call', 'reasoning', 'tool_call']], ['user', ['tool_result', 'tool_result']], ['assistant', ['text']],
    ]);
    const chat = encodeChatRequest(callFor(decoded, heldOutputLimit(10))).request.messages;
    expect(chat.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool', 'assistant']);
  });

  it("carries text.verbosity as the canonical verbosity, which the Chat codec reads and writes as Chat's own field", () => {
    const decoded = decodeResponsesRequest(parseCreateResponseRequest({ model: 'm', input: 'hi', text: { verbosity: 'low' } }));
    expect(decoded.options.verbosity).toBe('low');
    const chat = encodeChatRequest(callFor(decoded, heldOutputLimit(10))).request;
    expect((chat as Record<string, unknown>).verbosity).toBe('low');
    expect(decodeChatRequest(chat).options).toMatchObject({ verbosity: 'low' });
    expect(decodeChatRequest(chat).options.extensions).toBeUndefined();
  });

  it('answers 404 for an item_reference the endpoint did not resolve, naming the input item', () => {
    const request = parseCreateResponseRequest({ model: 'm', input: [{ type: 'message', role: 'user', content: 'hi' }, { type: 'item_reference', id: 'msg_gone' }] });
    expect(() => decodeResponsesRequest(request)).toThrow(expect.objectContaining({ status: 404, code: 'not_found', param: 'input[1]' }));
  });

  it('drops hosted tools and unknown items by name, and refuses a choice that forces one, as today', () => {
    const decoded = decodeResponsesRequest(parseCreateResponseRequest({
      model: 'm', input: [{ type: 'message', role: 'user', content: 'hi' }, { type: 'custom_tool_call', call_id: 'c', name: 'x', input: '' }],
      tools: [{ type: 'web_search' }, { type: 'namespace', name: 'multi_agent_v1' }, { type: 'function', name: 'f' }],
    }));
    expect(decoded.ignored).toEqual(['web_search', 'namespace:multi_agent_v1', 'input:custom_tool_call']);
    expect(decoded.options.tools).toEqual([{ kind: 'function', name: 'f', parameters: { type: 'object', properties: {} } }]);
    expect(decoded.tools).toEqual([{ type: 'function', name: 'f', description: null, parameters: null, strict: null }]);
    for (const tool_choice of [{ type: 'web_search' }, 'required', { type: 'function', name: 'nope' }] as const) {
      let err: unknown;
      try {
        decodeResponsesRequest(parseCreateResponseRequest({ model: 'm', input: 'hi', tools: [{ type: 'web_search' }], tool_choice }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayError);
      expect(err).toMatchObject({ status: 400, code: 'unsupported_tool_choice' });
    }
  });

  it("decodes input_file as a document, which a Chat route refuses with a 400 and Anthropic's takes", () => {
    const decoded = decodeResponsesRequest(parseCreateResponseRequest({ model: 'm', input: [{ type: 'message', role: 'user', content: [{ type: 'input_file', filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0=' }] }] }));
    expect(decoded.prompt.turns[0]).toEqual({ role: 'user', parts: [{ type: 'document', title: 'a.pdf', source: { kind: 'base64', mediaType: 'application/pdf', data: 'JVBERi0=' } }] });
    const call = callFor(decoded, heldOutputLimit(10));
    expect(encodeChatRequest(call).unsupported).toMatchObject({ status: 400, param: 'messages[0].content[0]' });
    expect(encodeMessagesRequest(call).messages[0].content).toEqual([{ type: 'document', title: 'a.pdf', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' } }]);
  });

  it('refuses a conversation with nothing to answer, and images outside user messages', () => {
    expect(() => decodeResponsesRequest(parseCreateResponseRequest({ model: 'm', instructions: 'be brief', input: [] }))).toThrow(expect.objectContaining({ status: 400, param: 'input' }));
    expect(() => decodeResponsesRequest(parseCreateResponseRequest({ model: 'm', input: [{ type: 'message', role: 'developer', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }, { type: 'message', role: 'user', content: 'hi' }] })))
      .toThrow(expect.objectContaining({ status: 400, param: 'input[0].content[0]' }));
  });
});
