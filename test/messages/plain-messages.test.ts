// parseMessagesRequest and parseCountTokensRequest take the messages of the shapes Anthropic's
// clients send without zod (`plainMessages`), and check the rest of the request with the same
// schema. zod's schemas stay the one definition: for any request the answer (the value, keys in
// the same order, or the 400) is the whole schema's.
import fc from 'fast-check';
import { parseAnswer as answerOf } from '../support/parse-answer';
import { parseCountTokensRequest, parseMessagesRequest, parseWholeCountTokensRequest, parseWholeMessagesRequest, plainMessages } from '../../lambda/messages/request';

const value = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]));
const text = fc.oneof(fc.string({ maxLength: 6 }), fc.constant(''));
const extra = { cache_control: fc.oneof(fc.record({ type: fc.constant('ephemeral') }), value), citations: value, toString: value };
const leaf = fc.oneof(
  fc.record({ type: fc.constant('text'), text: fc.oneof(text, value), ...extra }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('image'), source: fc.record({ type: fc.constant('base64'), media_type: fc.constant('image/png'), data: text }) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constantFrom('thinking'), thinking: fc.oneof(text, value), signature: fc.oneof(text, value) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('redacted_thinking'), data: fc.oneof(text, value) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constantFrom('document', 'search_result', 'toString', '', 'constructor'), ...extra }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('tool_use'), id: fc.oneof(text, value), name: fc.oneof(text, value), input: fc.oneof(fc.record({ path: text }), value), ...extra }, { requiredKeys: ['type'] }),
);
const block = fc.oneof(
  leaf,
  fc.record(
    { type: fc.constant('tool_result'), tool_use_id: fc.oneof(text, value), content: fc.oneof(text, fc.array(leaf, { maxLength: 2 }), value), is_error: fc.oneof(fc.boolean(), value), ...extra },
    { requiredKeys: ['type'] },
  ),
  value,
);
const message = fc.record(
  { role: fc.constantFrom('user', 'assistant', 'system', 'tool'), content: fc.oneof(text, fc.array(block, { maxLength: 3 }), value), name: value, extra: value },
  { requiredKeys: ['role'] },
);

describe('the Messages request, its messages taken without zod', () => {
  it("answers any request as the whole schema does: the same value, keys in zod's order, or the same 400", () => {
    let taken = 0;
    const request = fc.record(
      {
        model: fc.oneof(fc.constant('claude-sonnet-4-5'), value),
        max_tokens: fc.oneof(fc.integer({ min: 0, max: 5 }), value),
        messages: fc.oneof(fc.array(message, { minLength: 1, maxLength: 4 }), value),
        system: fc.oneof(text, value),
        stream: fc.oneof(fc.boolean(), value),
        metadata: value,
      },
      { requiredKeys: ['model', 'messages', 'max_tokens'] },
    );
    fc.assert(
      fc.property(request, (body) => {
        if (Array.isArray(body.messages) && plainMessages(body.messages)) taken++;
        expect(answerOf(parseMessagesRequest, body)).toEqual(answerOf(parseWholeMessagesRequest, body));
        expect(answerOf(parseCountTokensRequest, body)).toEqual(answerOf(parseWholeCountTokensRequest, body));
      }),
      { numRuns: 4000 },
    );
    // Not a property that holds by taking nothing.
    expect(taken).toBeGreaterThan(100);
  });

  it("takes a coding agent's turn whole: cached text, tool use, tool results of text blocks", () => {
    const messages = Array.from({ length: 20 }, (_, i) => [
      { role: 'user', content: [{ type: 'text', text: `Read f${i}`, cache_control: { type: 'ephemeral' } }] },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 'sig' }, { type: 'tool_use', id: `toolu_${i}`, name: 'Read', input: { file_path: `f${i}` } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_${i}`, content: [{ type: 'text', text: 'x'.repeat(100) }], is_error: false }] },
    ]).flat();
    // Keys in any order: zod gives the schema's first (role, content; a block's type), then the rest in theirs.
    messages.push({ content: [{ cache_control: { type: 'ephemeral' }, text: 'go on', type: 'text' }], extra: 1, role: 'user' } as never);
    expect(plainMessages(messages)).toHaveLength(61);
    const body = { model: 'claude-sonnet-4-5', max_tokens: 1000, stream: true, messages, metadata: { user_id: 'u' } };
    expect(JSON.stringify(parseMessagesRequest(body))).toBe(JSON.stringify(parseWholeMessagesRequest(body)));
  });

  it('leaves to zod an image, a key named __proto__, and what the schemas refuse', () => {
    expect(plainMessages([{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x' } }] }])).toBeUndefined();
    expect(plainMessages([JSON.parse('{"role":"user","content":"a","__proto__":{"x":1}}')])).toBeUndefined();
    expect(plainMessages([{ role: 'user', content: [JSON.parse('{"type":"text","text":"a","__proto__":1}')] }])).toBeUndefined();
    expect(plainMessages([{ role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'n', input: [] }] }])).toBeUndefined();
    expect(plainMessages([{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'text' }] }] }])).toBeUndefined();
    expect(plainMessages([{ role: 'assistant', content: [{ type: 'thinking', thinking: 'x' }] }])).toBeUndefined();
    expect(plainMessages([{ role: 'tool', content: 'x' }])).toBeUndefined();
  });

  it('keeps a block whose type is named as an Object.prototype member, as any type it does not read (zod did throw a TypeError)', () => {
    const body = { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'toString', x: 1 }, { type: 'constructor' }] }] };
    expect(parseWholeMessagesRequest(body)).toEqual(body);
    expect(parseMessagesRequest(body)).toEqual(body);
  });
});
