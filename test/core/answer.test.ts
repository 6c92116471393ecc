import fc from 'fast-check';
import { AnswerCollector, answerEvents, collectAnswer, promptTokensOf, type Answer } from '../../lambda/core/answer';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import { DONE_FRAME, sseBytes, sseFrameText } from '../../lambda/core/sse';
import { answer, reasoningPart, textPart, toolCallPart, usage } from '../codecs/arbitraries';

const anyAnswer = answer(
  fc.array(fc.oneof(textPart, fc.record({ type: fc.constant('refusal' as const), text: fc.string({ minLength: 1 }) }), reasoningPart, toolCallPart), { maxLength: 6 }),
  fc.constantFrom('stop', 'stop_sequence', 'length', 'tool_calls', 'refusal', 'pause'),
  fc.option(usage(), { nil: undefined }),
);

describe('the canonical answer', () => {
  it('collects its own events back into the same answer', () => {
    fc.assert(fc.property(anyAnswer, (a: Answer) => {
      expect(collectAnswer(answerEvents(a))).toEqual(a);
    }));
  });

  it('adds deltas of a part in order and keeps parts apart', () => {
    const c = new AnswerCollector();
    c.push({ type: 'start', id: 'a', model: 'm', createdS: 1 });
    c.push({ type: 'reasoning', index: 0, text: 'thi' });
    c.push({ type: 'reasoning', index: 0, text: 'nk' });
    c.push({ type: 'reasoning_signature', index: 0, signature: 'sig' });
    c.push({ type: 'tool_call_start', index: 1, id: 'call_1', name: 'f' });
    c.push({ type: 'tool_call_start', index: 2, id: 'call_2', name: 'g' });
    c.push({ type: 'tool_call_delta', index: 1, arguments: '{"a":' });
    c.push({ type: 'tool_call_delta', index: 2, arguments: '{}' });
    c.push({ type: 'tool_call_delta', index: 1, arguments: '1}' });
    c.push({ type: 'finish', reason: 'tool_calls' });
    expect(c.answer().parts).toEqual([
      { type: 'reasoning', text: 'think', signature: 'sig' },
      { type: 'tool_call', id: 'call_1', name: 'f', arguments: '{"a":1}' },
      { type: 'tool_call', id: 'call_2', name: 'g', arguments: '{}' },
    ]);
    expect(c.deliveredText()).toBe('think{"a":1}{}');
  });

  it('builds one message per choice index, each with its own parts, finish, logprobs and citations, whatever the interleaving', () => {
    const c = new AnswerCollector();
    const sure = (token: string) => ({ token, logprob: 0, bytes: null, top_logprobs: [] });
    c.push({ type: 'start', id: 'a', model: 'm', createdS: 1, systemFingerprint: 'fp_1' });
    c.push({ type: 'text', index: 0, text: 'Hi', choice: 2 });
    c.push({ type: 'text', index: 0, text: 'Hel' });
    c.push({ type: 'logprobs', content: [sure('Hel')] });
    c.push({ type: 'tool_call_start', index: 0, id: 'call_1', name: 'f', choice: 1 });
    c.push({ type: 'text', index: 0, text: 'lo' });
    c.push({ type: 'logprobs', content: [sure('lo')] });
    c.push({ type: 'annotation', annotation: { type: 'url_citation', url: 'https://example.com', title: 't', startIndex: 0, endIndex: 2 }, choice: 2 });
    c.push({ type: 'tool_call_delta', index: 0, arguments: '{}', choice: 1 });
    c.push({ type: 'finish', reason: 'length', choice: 2 });
    c.push({ type: 'finish', reason: 'tool_calls', choice: 1 });
    c.push({ type: 'finish', reason: 'stop' });
    const a = c.answer();
    expect(a).toMatchObject({ parts: [{ type: 'text', text: 'Hello' }], finishReason: 'stop', logprobs: { content: [sure('Hel'), sure('lo')], refusal: null }, systemFingerprint: 'fp_1' });
    expect(a.otherChoices).toEqual([
      { parts: [{ type: 'tool_call', id: 'call_1', name: 'f', arguments: '{}' }], finishReason: 'tool_calls' },
      { parts: [{ type: 'text', text: 'Hi' }], finishReason: 'length', annotations: [{ type: 'url_citation', url: 'https://example.com', title: 't', startIndex: 0, endIndex: 2 }] },
    ]);
    expect(collectAnswer(answerEvents(a))).toEqual(a);
    // Every choice's output is delivered, for the tokenizer when the provider reports no usage.
    expect(c.deliveredText()).toBe('Hello{}Hi');
    expect(() => c.push({ type: 'text', index: 0, text: 'x', choice: 128 })).toThrow(/choice 128/);
  });

  it('refuses a part that skips an index or changes kind', () => {
    const c = new AnswerCollector();
    expect(() => c.push({ type: 'text', index: 1, text: 'x' })).toThrow(/opened before part 0/);
    c.push({ type: 'text', index: 0, text: 'x' });
    expect(() => c.push({ type: 'reasoning', index: 0, text: 'y' })).toThrow(/is text, not reasoning/);
    expect(() => c.push({ type: 'tool_call_delta', index: 0, arguments: '{}' })).toThrow(/no tool call/);
  });

  it('counts the whole prompt as OpenAI does: uncached, reads and both lifetimes of writes', () => {
    expect(promptTokensOf({ inputTokens: 3, cacheReadTokens: 100, cacheWriteTokens: 20, cacheWrite1hTokens: 7, outputTokens: 9 })).toBe(130);
  });
});

describe('the held output limit', () => {
  it('is made only from a positive integer and replaces the client wish in the call', () => {
    expect(() => heldOutputLimit(0)).toThrow(RangeError);
    expect(() => heldOutputLimit(1.5)).toThrow(RangeError);
    const call = callFor({ prompt: { system: [], turns: [] }, options: { model: 'm', stream: false, tools: [], outputLimit: 64_000 } }, heldOutputLimit(4_096));
    expect(call.settings.maxOutputTokens).toBe(4_096);
    expect(call.settings).not.toHaveProperty('outputLimit');
  });
});

describe('the SSE frame writer', () => {
  it('writes named and unnamed events, JSON and raw text, each ending in a blank line', () => {
    expect(sseFrameText({ data: { a: 1 } })).toBe('data: {"a":1}\n\n');
    expect(sseFrameText({ event: 'message_stop', data: { type: 'message_stop' } })).toBe('event: message_stop\ndata: {"type":"message_stop"}\n\n');
    expect(sseFrameText(DONE_FRAME)).toBe('data: [DONE]\n\n');
    expect(new TextDecoder().decode(sseBytes([{ data: 'x', raw: true }, DONE_FRAME]))).toBe('data: x\n\ndata: [DONE]\n\n');
  });

  it('never lets a newline in a payload split the data line', () => {
    expect(sseFrameText({ data: { text: 'a\nb\r\n' } })).toBe('data: {"text":"a\\nb\\r\\n"}\n\n');
  });
});
