import fc from 'fast-check';
import { encodeMessagesAnswer, decodeMessagesAnswer, encodeMessagesRequest } from '../../lambda/codecs/anthropic-messages';
import { encryptedContentOf, reasoningPartOfItem, responsesOutput, responsesUsage, usageOfResponses } from '../../lambda/codecs/openai-responses';
import type { Answer } from '../../lambda/core/answer';
import { heldOutputLimit } from '../../lambda/core/call';
import { openAiValidator } from '../support/openai-schema';
import { answer, id, reasoningPart, signature, text, textPart, toolCallPart, usage } from './arbitraries';

const valid = (schema: string, value: unknown) => {
  const validate = openAiValidator(schema);
  if (!validate(value)) throw new Error(`Not a valid ${schema}: ${JSON.stringify(validate.errors)}\n${JSON.stringify(value)}`);
};

const options = { idFor: (prefix: string, position: number) => `${prefix}_${position}`, status: 'completed' as const, includeEncrypted: true };

describe('the Responses codec (first slice): reasoning items', () => {
  it("carries an Anthropic thinking block's signature, or a redacted block, through encrypted_content and back unchanged", () => {
    fc.assert(fc.property(reasoningPart, (part) => {
      const [item] = responsesOutput({ id: 'r', model: 'm', createdS: 1, parts: [part], finishReason: 'stop' }, options);
      valid('ReasoningItem', item);
      expect(reasoningPartOfItem(JSON.parse(JSON.stringify(item)))).toEqual(part);
    }));
  });

  it("passes OpenAI's own encrypted reasoning through as it came, with its id", () => {
    fc.assert(fc.property(id, signature, text, (rs, blob, summary) => {
      const part = { type: 'reasoning' as const, text: summary, encryptedContent: blob, id: `rs_${rs}` };
      const [item] = responsesOutput({ id: 'r', model: 'm', createdS: 1, parts: [part], finishReason: 'stop' }, options);
      expect(item).toMatchObject({ id: `rs_${rs}`, encrypted_content: blob });
      expect(reasoningPartOfItem(item as never)).toEqual(part);
    }));
  });

  it('keeps the reasoning items without include, and leaves encrypted_content out then', () => {
    const parts = [{ type: 'reasoning' as const, text: 't', signature: 's' }];
    const [item] = responsesOutput({ id: 'r', model: 'm', createdS: 1, parts, finishReason: 'stop' }, { ...options, includeEncrypted: false });
    expect(item).toEqual({ id: 'rs_0', type: 'reasoning', summary: [{ type: 'summary_text', text: 't' }], status: 'completed' });
    expect(encryptedContentOf({ text: 'unsigned' })).toBeUndefined();
  });

  it('places items in the order the provider answered, each valid for the OpenAI spec', () => {
    fc.assert(fc.property(answer(fc.array(fc.oneof(textPart, reasoningPart, toolCallPart), { maxLength: 6 }), fc.constant('stop'), fc.constant(undefined)), (a: Answer) => {
      const items = responsesOutput(a, options);
      items.forEach((item) => valid('OutputItem', item));
      const kinds = a.parts.map((p) => (p.type === 'text' ? 'message' : p.type === 'tool_call' ? 'function_call' : 'reasoning')).filter((k, i, all) => k !== 'message' || all[i - 1] !== 'message');
      expect(items.map((i) => i.type)).toEqual(kinds);
    }));
  });

  it('turns an Anthropic tool turn into items that, sent back, give Claude its thinking ahead of tool_use', () => {
    const thinking = [{ type: 'thinking', thinking: 'Run it.', signature: 'EqQBCkYIBxgC' }, { type: 'redacted_thinking', data: 'EmwKAhgB' }] as const;
    const upstream = decodeMessagesAnswer({ id: 'msg', model: 'claude', stop_reason: 'tool_use', content: [...thinking, { type: 'tool_use', id: 'toolu_1', name: 'shell', input: { cmd: 'ls' } }], usage: { input_tokens: 1, output_tokens: 1 } });
    const items = responsesOutput(upstream, options);
    const parts = items.map((item) => (item.type === 'reasoning' ? reasoningPartOfItem(JSON.parse(JSON.stringify(item))) : item.type === 'function_call' ? { type: 'tool_call' as const, id: item.call_id, name: item.name, arguments: item.arguments } : undefined)).filter((p) => p !== undefined);
    const body = encodeMessagesRequest({ prompt: { system: [], turns: [{ role: 'user', parts: [{ type: 'text', text: 'go' }] }, { role: 'assistant', parts }] }, settings: { model: 'claude', stream: false, tools: [], maxOutputTokens: heldOutputLimit(8_000), reasoning: { mode: 'enabled', effort: 'medium' } } });
    expect(body.messages[1].content).toEqual([...thinking, { type: 'tool_use', id: 'toolu_1', name: 'shell', input: { cmd: 'ls' } }]);
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 4_096 });
    expect(encodeMessagesAnswer(upstream).content.slice(0, 2)).toEqual(thinking);
  });
});

describe('the Responses codec (first slice): usage', () => {
  it('counts cache reads and writes in input_tokens, the reads as cached_tokens, the writes as cache_write_tokens', () => {
    expect(responsesUsage({ inputTokens: 3, cacheReadTokens: 50, cacheWriteTokens: 100, cacheWrite1hTokens: 20, outputTokens: 9, reasoningTokens: 4 })).toEqual({
      input_tokens: 173, input_tokens_details: { cached_tokens: 50, cache_write_tokens: 120 }, output_tokens: 9, output_tokens_details: { reasoning_tokens: 4 }, total_tokens: 182,
    });
  });

  it('writes usage valid for the spec, and reads it back', () => {
    fc.assert(fc.property(usage({ serverTools: false, tier: false }), (u) => {
      const wire = responsesUsage(u);
      valid('ResponseUsage', wire);
      expect(wire.input_tokens).toBe(u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens + u.cacheWrite1hTokens);
      expect(usageOfResponses(wire)).toEqual({ ...u, cacheWriteTokens: u.cacheWriteTokens + u.cacheWrite1hTokens, cacheWrite1hTokens: 0, reasoningTokens: u.reasoningTokens ?? 0 });
    }));
  });
});
