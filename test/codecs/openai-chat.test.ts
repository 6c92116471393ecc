import fc from 'fast-check';
import {
  ChatChunkDecoder,
  ChatChunkEncoder,
  chatFrame,
  chatStreamTerminals,
  chatUsage,
  usageOfChat,
  decodeChatCompletion,
  decodeChatRequest,
  encodeChatCompletion,
  encodeChatRequest,
} from '../../lambda/codecs/openai-chat';
import { MessagesEventDecoder, MessagesEventEncoder, decodeMessagesAnswer, decodeMessagesRequest, encodeMessagesAnswer, encodeMessagesRequest, type MessagesWireRequest } from '../../lambda/codecs/anthropic-messages';
import { answerEvents, collectAnswer, type Answer, type AnswerChoice, type AnswerEvent } from '../../lambda/core/answer';
import { callFor, heldOutputLimit, type Call } from '../../lambda/core/call';
import type { AssistantPart, Turn, UserPart } from '../../lambda/core/prompt';
import { sseFrameText } from '../../lambda/core/sse';
import { callPromptEstimate, chatPromptEstimate, OPENAI_TOKEN_RULES, warmTokenizer } from '../../lambda/money/tokens';
import type { ChatCompletionChunk } from '../../lambda/contract/openai';
import { usageExtras } from '../../lambda/contract/usage';
import type { ChatCompletionRequest } from '../../lambda/contract/request';
import { validateChunk, validateCompletion } from '../support/openai-schema';
import { answer, choiceLogprobs, id, reasoningPart, signature, text, textPart, toolArguments, toolCallPart, toolName, urlCitation, usage, word } from './arbitraries';

const image = fc.record({
  type: fc.constant('image' as const),
  source: fc.oneof(
    fc.record({ kind: fc.constant('base64' as const), mediaType: fc.constant('image/png'), data: signature }),
    fc.record({ kind: fc.constant('url' as const), url: word.map((w) => `https://example.com/${w}.png`) }),
  ),
  detail: fc.constantFrom('auto' as const, 'low' as const, 'high' as const),
}, { requiredKeys: ['type', 'source'] });
const toolResult = fc.record({ type: fc.constant('tool_result' as const), toolCallId: id, content: fc.tuple(text).map(([t]) => [{ type: 'text' as const, text: t }]) });

/** A user turn as Chat carries it: its tool results first, then its own text and images (one text alone, or several parts). */
const userTurn: fc.Arbitrary<Turn> = fc
  .tuple(fc.array(toolResult, { maxLength: 2 }), fc.oneof(fc.constant([] as UserPart[]), textPart.map((p) => [p] as UserPart[]), fc.array(fc.oneof(textPart, image), { minLength: 2, maxLength: 3 })))
  .filter(([results, own]) => results.length + own.length > 0)
  .map(([results, own]) => ({ role: 'user' as const, parts: [...results, ...own] }));
/** An assistant turn as Chat carries it: thinking, then one text, then tool calls. */
const assistantTurn: fc.Arbitrary<Turn> = fc
  .tuple(fc.array(reasoningPart, { maxLength: 2 }), fc.option(textPart, { nil: undefined }), fc.array(toolCallPart, { maxLength: 2 }))
  .filter(([r, t, c]) => t !== undefined || c.length > 0 || r.length > 0)
  .map(([r, t, c]) => ({ role: 'assistant' as const, parts: [...r, ...(t ? [t] : []), ...c] as AssistantPart[] }));
const systemTurn: fc.Arbitrary<Turn> = textPart.map((p) => ({ role: 'system' as const, parts: [p] }));

const conversation = fc.array(fc.tuple(fc.option(systemTurn, { nil: undefined }), assistantTurn, userTurn), { maxLength: 3 })
  .chain((rounds) => userTurn.map((first) => [first, ...rounds.flatMap(([s, a, u]) => [...(s ? [s] : []), a, u])]));

const chatCall: fc.Arbitrary<Call> = fc
  .record({
    system: fc.option(textPart, { nil: undefined }),
    turns: conversation,
    model: word,
    stream: fc.boolean(),
    includeUsage: fc.option(fc.boolean(), { nil: undefined }),
    max: fc.integer({ min: 1, max: 128_000 }),
    temperature: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
    topP: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
    stop: fc.option(fc.array(word, { minLength: 1, maxLength: 4 }), { nil: undefined }),
    tools: fc.uniqueArray(toolName, { maxLength: 3 }).map((names) => names.map((name) => ({ kind: 'function' as const, name, parameters: { type: 'object' } }))),
    choice: fc.option(fc.constantFrom('auto' as const, 'required' as const, 'none' as const, 'first' as const), { nil: undefined }),
    noParallel: fc.boolean(),
    effort: fc.option(fc.constantFrom('low' as const, 'medium' as const, 'high' as const, 'none' as const), { nil: undefined }),
    format: fc.option(fc.oneof(fc.constant({ type: 'json_object' as const }), fc.record({ type: fc.constant('json_schema' as const), name: toolName, schema: fc.constant({ type: 'object' }), strict: fc.boolean() })), { nil: undefined }),
    user: fc.option(word, { nil: undefined }),
    serviceTier: fc.option(fc.constantFrom('auto', 'priority'), { nil: undefined }),
    seed: fc.option(fc.integer(), { nil: undefined }),
  })
  .map((g): Call => {
    const choice = g.tools.length && g.choice ? (g.choice === 'first' ? { type: 'tool' as const, name: g.tools[0].name } : { type: g.choice }) : undefined;
    return {
      prompt: { system: g.system ? [g.system] : [], turns: g.turns },
      settings: {
        model: g.model,
        stream: g.stream,
        ...(g.stream && g.includeUsage !== undefined && { includeUsage: g.includeUsage }),
        maxOutputTokens: heldOutputLimit(g.max),
        tools: g.tools,
        ...(g.temperature !== undefined && { temperature: g.temperature }),
        ...(g.topP !== undefined && { topP: g.topP }),
        ...(g.stop && { stop: g.stop }),
        ...(choice && { toolChoice: choice }),
        ...(choice && choice.type !== 'none' && g.noParallel && { parallelToolCalls: false }),
        ...(g.effort && { reasoning: g.effort === 'none' ? { mode: 'disabled' as const, effort: 'none' as const } : { mode: 'enabled' as const, effort: g.effort } }),
        ...(g.format && { responseFormat: g.format }),
        ...(g.user !== undefined && { user: g.user }),
        ...(g.serviceTier && { serviceTier: g.serviceTier }),
        ...(g.seed !== undefined && { extensions: { wire: 'openai-chat' as const, fields: { seed: g.seed } } }),
      },
    };
  });

/** Answers in the order a Chat message holds them: thinking, text, refusal, tool calls. */
const chatAnswer = (withReasoning: boolean, withRefusal = true) =>
  answer(
    fc.tuple(
      withReasoning ? fc.array(reasoningPart, { maxLength: 2 }) : fc.constant([]),
      fc.option(textPart, { nil: undefined }),
      withRefusal ? fc.option(fc.record({ type: fc.constant('refusal' as const), text }), { nil: undefined }) : fc.constant(undefined),
      fc.array(toolCallPart, { maxLength: 3 }),
    ).map(([r, t, x, c]) => [...r, ...(t ? [t] : []), ...(x ? [x] : []), ...c]),
    fc.constantFrom('stop', 'length', 'tool_calls', 'refusal'),
    fc.option(usage({ cacheWrites: false, serverTools: false, tiers: ['default', 'priority', 'flex'] }), { nil: undefined }),
  ).map((a) => (a.finishReason === 'tool_calls' && !a.parts.some((p) => p.type === 'tool_call') ? { ...a, finishReason: 'stop' as const } : a));

/** What an OpenAI upstream adds to a choice when asked: per-token log probabilities, and URL citations (web search). */
const withChoiceExtras = <C extends AnswerChoice>(choice: fc.Arbitrary<C>): fc.Arbitrary<C> =>
  fc.tuple(choice, fc.option(choiceLogprobs, { nil: undefined }), fc.array(urlCitation, { maxLength: 2 })).map(([c, logprobs, annotations]) => ({
    ...c,
    ...(logprobs && { logprobs }),
    ...(annotations.length > 0 && { annotations }),
  }));

/** Answers of `n` choices (1 to 4) as OpenAI sends them: each with its logprobs and citations, a system fingerprint or none. */
const severalChoicesAnswer = fc
  .tuple(
    withChoiceExtras(chatAnswer(true)),
    fc.array(withChoiceExtras(chatAnswer(false).map(({ parts, finishReason }): AnswerChoice => ({ parts, finishReason }))), { maxLength: 3 }),
    fc.option(fc.stringMatching(/^fp_[a-f0-9]{6,10}$/), { nil: undefined }),
  )
  .map(([first, others, fingerprint]): Answer => ({
    ...first,
    ...(fingerprint !== undefined && { systemFingerprint: fingerprint }),
    ...(others.length > 0 && { otherChoices: others }),
  }));

function chunksOf(a: Answer, options: { includeUsage?: boolean } = {}): ChatCompletionChunk[] {
  const encoder = new ChatChunkEncoder(options);
  return [...answerEvents(a).flatMap((e) => encoder.push(e)), ...encoder.end()];
}

const sameClock = <T extends { created: number; id: string }>(x: T): T => ({ ...x, created: 0, id: 'x' });

describe('the OpenAI Chat Completions codec: requests', () => {
  it('decodes what it encodes (decode ∘ encode = identity), thinking fields included', () => {
    fc.assert(fc.property(chatCall, (call) => {
      const { request, unsupported } = encodeChatRequest(call, { thinkingFields: true });
      expect(unsupported).toBeUndefined();
      const { maxOutputTokens, ...options } = call.settings;
      expect(decodeChatRequest(JSON.parse(JSON.stringify(request)) as ChatCompletionRequest)).toEqual({ prompt: call.prompt, options: { ...options, outputLimit: maxOutputTokens } });
    }), { numRuns: 300 });
  });

  it('counts a canonical prompt as the Chat request it becomes counts (money/tokens.ts callPromptEstimate), the tokenizer loaded', async () => {
    await warmTokenizer();
    const rules = [OPENAI_TOKEN_RULES, { image: { kind: 'anthropic' as const }, textMargin: 1.2 }];
    fc.assert(fc.property(chatCall, fc.constantFrom(...rules), (call, rule) => {
      const { request } = encodeChatRequest(call);
      const chat = chatPromptEstimate(request, rule);
      const canonical = callPromptEstimate(call.prompt, call.settings, rule);
      expect({ bound: canonical.bound, tokens: canonical.tokens() }).toEqual({ bound: chat.bound, tokens: chat.tokens() });
      // Sent back to Claude, thinking counts on top of what Chat sends.
      const thinking = call.prompt.turns.flatMap((t) => (t.role === 'assistant' ? t.parts : [])).filter((p) => p.type === 'reasoning');
      const claude = callPromptEstimate(call.prompt, call.settings, rule, undefined, true);
      if (thinking.some((p) => (p.redactedData ?? p.text).length > 0)) expect(claude.bound).toBeGreaterThan(chat.bound);
      else expect(claude.bound).toBeGreaterThanOrEqual(chat.bound);
    }), { numRuns: 300 });
  });

  it('leaves thinking out of what goes to an upstream unless asked to send it', () => {
    const call = callFor(decodeChatRequest({
      model: 'm',
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }], thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 's' }] } as never,
        { role: 'tool', tool_call_id: 'c', content: 'r' },
      ],
    }), heldOutputLimit(10));
    expect(encodeChatRequest(call).request.messages[1]).toEqual({ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] });
  });

  it('refuses what a Chat upstream cannot take, and drops provider tools by name', () => {
    const call = callFor(decodeMessagesRequest({
      model: 'c', max_tokens: 10,
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'd' } }] }],
      tools: [{ type: 'web_search_20250305', name: 'web_search' }],
      tool_choice: { type: 'tool', name: 'web_search' },
    } as MessagesWireRequest), heldOutputLimit(10));
    const { unsupported, droppedTools } = encodeChatRequest(call);
    expect(droppedTools).toEqual(['web_search']);
    expect(unsupported?.param).toBe('messages[0].content[0]');
  });
});

describe('the OpenAI Chat Completions codec: answers', () => {
  it('decodes the ChatCompletion it encodes, which the OpenAI spec accepts', () => {
    fc.assert(fc.property(chatAnswer(true), (a) => {
      const wire = encodeChatCompletion(a);
      validateCompletion(wire);
      expect(decodeChatCompletion(JSON.parse(JSON.stringify(wire)))).toEqual(a);
    }), { numRuns: 200 });
  });

  it('decodes the chunks it encodes into the same answer, each chunk valid for the OpenAI spec', () => {
    fc.assert(fc.property(chatAnswer(true), (a) => {
      const chunks = chunksOf(a);
      chunks.forEach((c) => validateChunk(c));
      const decoder = new ChatChunkDecoder();
      const back = collectAnswer(chunks.flatMap((c) => decoder.push(JSON.parse(JSON.stringify(c)))));
      expect(back).toEqual(a);
    }), { numRuns: 200 });
  });

  it('keeps every choice, its logprobs and citations, and the system fingerprint through JSON, valid for the OpenAI spec', () => {
    fc.assert(fc.property(severalChoicesAnswer, (a) => {
      const wire = encodeChatCompletion(a);
      validateCompletion(wire);
      expect(wire.choices.map((c) => c.index)).toEqual([...Array(1 + (a.otherChoices?.length ?? 0)).keys()]);
      expect(wire.choices[0].logprobs).toEqual(a.logprobs ?? null);
      expect(wire.system_fingerprint).toBe(a.systemFingerprint);
      expect(decodeChatCompletion(JSON.parse(JSON.stringify(wire)))).toEqual(a);
    }), { numRuns: 200 });
  });

  it('writes back the top-level and message fields it does not name, as sent, never over the ones it does', () => {
    fc.assert(fc.property(
      fc.dictionary(word.map((w) => `x_${w}`), fc.jsonValue(), { maxKeys: 3 }),
      fc.dictionary(word.map((w) => `x_${w}`), fc.jsonValue(), { maxKeys: 3 }),
      (top, message) => {
        const completion = {
          id: 'c', object: 'chat.completion', created: 1, model: 'm', ...top,
          choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null, ...message }, logprobs: null, finish_reason: 'stop' }],
        } as unknown as Parameters<typeof decodeChatCompletion>[0];
        const wire = JSON.parse(JSON.stringify(encodeChatCompletion({ ...decodeChatCompletion(completion), model: 'gateway-id' })));
        expect(wire).toMatchObject({ ...JSON.parse(JSON.stringify(top)), model: 'gateway-id', object: 'chat.completion' });
        expect(wire.choices[0].message).toEqual({ ...JSON.parse(JSON.stringify(message)), role: 'assistant', content: 'hi', refusal: null });
      },
    ), { numRuns: 100 });
  });

  it('keeps logprobs of neither content nor refusal as sent on JSON (asked, but no tokens to give), and null as null', () => {
    const completion = { id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [
      { index: 0, message: { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }] }, logprobs: { content: null, refusal: null }, finish_reason: 'tool_calls' },
      { index: 1, message: { role: 'assistant', content: 'x', refusal: null }, logprobs: null, finish_reason: 'stop' },
    ] } as unknown as Parameters<typeof decodeChatCompletion>[0];
    const wire = encodeChatCompletion(decodeChatCompletion(completion));
    validateCompletion(wire);
    expect(wire.choices.map((c) => c.logprobs)).toEqual([{ content: null, refusal: null }, null]);
  });

  it('keeps every choice, its logprobs and citations, and the system fingerprint through a stream, each chunk valid', () => {
    fc.assert(fc.property(severalChoicesAnswer, fc.boolean(), (a, interleave) => {
      const chunks = chunksOf(a);
      chunks.forEach((c) => validateChunk(c));
      if (a.systemFingerprint !== undefined) expect(chunks.every((c) => c.system_fingerprint === a.systemFingerprint)).toBe(true);
      // OpenAI interleaves the choices of one stream: each choice's chunks keep their order, the choices do not.
      const ordered = interleave ? interleaved(chunks) : chunks;
      const decoder = new ChatChunkDecoder();
      expect(collectAnswer(ordered.flatMap((c) => decoder.push(JSON.parse(JSON.stringify(c)))))).toEqual(a);
    }), { numRuns: 200 });
  });

  it('carries Claude thinking through a Chat client and back to Anthropic unchanged, ahead of tool_use, with thinking on', () => {
    const thinking = [{ type: 'thinking', thinking: 'I should run it.', signature: 'EqQBCkYIBxgCKkA' }, { type: 'redacted_thinking', data: 'EmwKAhgBEgy3' }] as const;
    const upstream = decodeMessagesAnswer({
      id: 'msg_1', model: 'claude', stop_reason: 'tool_use',
      content: [...thinking, { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'echo hi' } }],
      usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
    const message = encodeChatCompletion(upstream).choices[0].message;
    expect(message.thinking_blocks).toEqual(thinking);
    expect(message.reasoning_content).toBe('I should run it.');

    // The client sends the message back as it got it, with the tool's result, at reasoning_effort high.
    const next = decodeChatRequest({
      model: 'claude', reasoning_effort: 'high',
      messages: [{ role: 'user', content: 'run echo hi' }, message as never, { role: 'tool', tool_call_id: 'toolu_1', content: 'hi' }],
    } as ChatCompletionRequest);
    const body = encodeMessagesRequest(callFor(next, heldOutputLimit(32_000)));
    expect(body.messages[1]).toEqual({ role: 'assistant', content: [...thinking, { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'echo hi' } }] });
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 16_384 });
  });

  it("turns an OpenAI-compatible upstream's reasoning_content into thinking blocks before the text on /v1/messages", () => {
    const chunk = (delta: object, finish: string | null = null) => ({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] }) as ChatCompletionChunk;
    const decoder = new ChatChunkDecoder();
    const encoder = new MessagesEventEncoder();
    const events = [chunk({ role: 'assistant', content: '' }), chunk({ reasoning_content: 'hmm' }), chunk({ reasoning_content: '…' }), chunk({ content: 'Hi' }), chunk({}, 'stop')]
      .flatMap((c) => decoder.push(c)).flatMap((e) => encoder.push(e));
    const blocks = [...events, ...encoder.end()].filter((e) => e.type === 'content_block_start').map((e) => (e as { content_block: unknown }).content_block);
    expect(blocks).toEqual([{ type: 'thinking', thinking: '', signature: '' }, { type: 'text', text: '' }]);
    const once = new ChatChunkDecoder();
    expect(collectAnswer([chunk({ role: 'assistant', content: '' }), chunk({ reasoning_content: 'hmm' }), chunk({ content: 'Hi' })].flatMap((c) => once.push(c))).parts)
      .toEqual([{ type: 'reasoning', text: 'hmm' }, { type: 'text', text: 'Hi' }]);
  });

  it('ends a stream with [DONE], and a failure with an error event then [DONE]', () => {
    expect(chatStreamTerminals.ended().map(sseFrameText)).toEqual(['data: [DONE]\n\n']);
    expect(chatStreamTerminals.failed({ status: 502, type: 'api_error', code: 'upstream_error', param: null, message: 'boom' }).map(sseFrameText))
      .toEqual(['data: {"error":{"message":"boom","type":"api_error","param":null,"code":"upstream_error"}}\n\n', 'data: [DONE]\n\n']);
    expect(sseFrameText(chatFrame({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [] }))).toBe('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}\n\n');
  });
});

describe('usage through the Chat codec', () => {
  it('keeps every billed class in process (settlement reads the extras), and only OpenAI fields on the wire', () => {
    fc.assert(fc.property(usage({ tiers: ['default', 'priority'] }), (u) => {
      const wire = chatUsage(u);
      expect(usageOfChat(wire)).toEqual(u);
      expect(usageExtras(wire)).toMatchObject({ ...(u.cacheWriteTokens && { cacheWriteTokens: u.cacheWriteTokens }), ...(u.cacheWrite1hTokens && { cacheWrite1hTokens: u.cacheWrite1hTokens }) });
      expect(Object.keys(JSON.parse(JSON.stringify(wire))).sort()).toEqual(['completion_tokens', 'prompt_tokens', ...(u.reasoningTokens !== undefined ? ['completion_tokens_details'] : []), 'prompt_tokens_details', 'total_tokens'].sort());
      expect(wire.prompt_tokens).toBe(u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens + u.cacheWrite1hTokens);
    }));
  });
});

/** The chunks of a stream with its choices taken in turns (the first chunk and the usage chunk stay where they are). */
function interleaved(chunks: ChatCompletionChunk[]): ChatCompletionChunk[] {
  const [first, ...rest] = chunks;
  const tail = rest.filter((c) => c.choices.length === 0);
  const queues = new Map<number, ChatCompletionChunk[]>();
  for (const c of rest.filter((x) => x.choices.length > 0)) {
    const i = c.choices[0].index;
    queues.set(i, [...(queues.get(i) ?? []), c]);
  }
  const out: ChatCompletionChunk[] = [first];
  while ([...queues.values()].some((q) => q.length)) for (const q of [...queues.values()].reverse()) if (q.length) out.push(q.shift()!);
  return [...out, ...tail];
}
