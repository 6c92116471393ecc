// parseChatCompletionRequest takes the messages of the shapes clients send without zod
// (`plainMessage`), and checks the rest of the request with the same schema. zod's schema stays the
// one definition: for any message, what `plainMessage` takes zod takes and gives the same value
// (keys in the same order); for any request, the answer (the value, or the 400) is the whole
// schema's.
import fc from 'fast-check';
import { parseAnswer as answerOf } from '../support/parse-answer';
import { longPrompt } from '../../bench/first-byte';
import { chatCompletionRequestSchema, chatMessageSchema, parseChatCompletionRequest, parseRequestBody, plainMessage } from '../../lambda/contract/request';

const value = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]));
const text = fc.oneof(fc.string({ maxLength: 6 }), fc.constant(''));
const part = fc.record(
  { type: fc.constantFrom('text', 'image_url', 'refusal', 'audio'), text: fc.oneof(text, value), refusal: text, image_url: fc.record({ url: text }), extra: value },
  { requiredKeys: ['type'] },
);
const fn = fc.record({ name: fc.oneof(text, value), arguments: fc.oneof(text, value), extra: value }, { requiredKeys: [] });
const call = fc.record({ id: fc.oneof(text, value), type: fc.constantFrom('function', 'custom'), function: fc.oneof(fn, value), extra: value }, { requiredKeys: [] });
const content = fc.oneof(text, fc.constant(null), fc.array(part, { maxLength: 3 }), fc.array(fc.record({ type: fc.constant('text'), text }), { maxLength: 3 }), value);
// Each role's own keys, each present or not, the values near what zod takes and not; and any
// key with any role.
const anyKeys = fc.record(
  {
    role: fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function', 'robot'),
    content,
    name: fc.oneof(text, value),
    tool_call_id: fc.oneof(text, value),
    tool_calls: fc.oneof(fc.array(call, { maxLength: 3 }), value),
    refusal: fc.oneof(text, value),
    reasoning_content: fc.oneof(text, value),
    function_call: fc.oneof(fc.record({ name: text, arguments: text }), value),
    thinking_blocks: fc.oneof(fc.constant([]), value),
    extra: value,
  },
  { requiredKeys: [] },
);
const message = fc.oneof(
  fc.record({ role: fc.constantFrom('system', 'developer', 'user'), content, name: fc.oneof(text, value) }, { requiredKeys: ['role'] }),
  fc.record({ role: fc.constant('tool'), content, tool_call_id: fc.oneof(text, value) }, { requiredKeys: ['role'] }),
  fc.record(
    { role: fc.constant('assistant'), content, name: fc.oneof(text, value), tool_calls: fc.oneof(fc.array(call, { maxLength: 3 }), value), refusal: fc.oneof(text, fc.constant(null)), extra: value },
    { requiredKeys: ['role'] },
  ),
  anyKeys,
);
const wholeSchema = (body: unknown) => parseRequestBody(chatCompletionRequestSchema(), body);

describe('plainMessage', () => {
  it("takes only what zod's message schema takes, and gives zod's value, keys in zod's order", () => {
    let taken = 0;
    fc.assert(
      fc.property(message, (m) => {
        const plain = plainMessage(m);
        if (plain === undefined) return;
        taken++;
        const zod = chatMessageSchema().safeParse(m);
        expect(zod.success).toBe(true);
        expect(JSON.stringify(plain)).toBe(JSON.stringify(zod.data));
        expect(plain).toEqual(zod.data);
      }),
      { numRuns: 5000 },
    );
    // Not a property that holds by taking nothing.
    expect(taken).toBeGreaterThan(100);
  });

  it("takes a coding agent's history whole: system, user, assistant tool calls and tool results", () => {
    const { messages } = longPrompt(30_000, 'agent');
    expect(messages.length).toBeGreaterThan(20);
    for (const m of messages) expect(plainMessage(m)).toBeDefined();
    expect(plainMessage({ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] })).toEqual({ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] });
    expect(plainMessage({ role: 'assistant', content: null, name: 'x' })).toEqual({ role: 'assistant', content: null, name: 'x' });
  });

  it("strips what zod strips: a key no role's shape has, another role's key, `__proto__`", () => {
    for (const m of [
      { role: 'user', content: 'hi', extra: 1, tool_call_id: 'c' },
      { role: 'tool', content: [{ type: 'text', text: 'a', cache_control: { type: 'ephemeral' } }], tool_call_id: 'c', name: 'n' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}', extra: 1 }, index: 0 }] },
      JSON.parse('{"role":"user","content":"hi","__proto__":{"x":1}}'),
    ]) {
      const plain = plainMessage(m);
      expect(plain).toBeDefined();
      expect(JSON.stringify(plain)).toBe(JSON.stringify(chatMessageSchema().parse(m)));
    }
  });

  it('leaves to zod what it would refuse, or keep and plainMessage does not take', () => {
    expect(plainMessage({ role: 'user', content: [] })).toBeUndefined();
    expect(plainMessage({ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x' } }] })).toBeUndefined();
    expect(plainMessage({ role: 'tool', content: 'x', tool_call_id: '' })).toBeUndefined();
    expect(plainMessage({ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: '', arguments: '{}' } }] })).toBeUndefined();
    expect(plainMessage({ role: 'assistant', content: 'a', reasoning_content: 'r' })).toBeUndefined();
    for (const key of ['refusal', 'function_call', 'reasoning_content', 'thinking_blocks']) expect(plainMessage({ role: 'assistant', content: 'a', [key]: null })).toBeUndefined();
  });
});

describe('parseChatCompletionRequest', () => {
  it("answers any request as the whole schema does: the same value, or the same 400", () => {
    const request = fc.record(
      {
        model: fc.oneof(fc.constant('gpt-4o'), value),
        messages: fc.oneof(fc.array(message, { maxLength: 4 }), value),
        temperature: fc.oneof(fc.double({ min: -1, max: 3, noNaN: true }), value),
        stream: fc.oneof(fc.boolean(), value),
        stream_options: fc.oneof(fc.record({ include_usage: fc.boolean() }), value),
        tool_choice: fc.oneof(fc.constantFrom('auto', 'none'), value),
        custom_field: value,
      },
      { requiredKeys: ['model', 'messages'] },
    );
    fc.assert(
      fc.property(request, (body) => {
        expect(answerOf(parseChatCompletionRequest, body)).toEqual(answerOf(wholeSchema, body));
      }),
      { numRuns: 3000 },
    );
  });

  it("gives an agent's long request exactly as the whole schema does, and still refuses a bad message in it by name", () => {
    const body = { model: 'gpt-4o', stream: true, ...longPrompt(60_000, 'agent') };
    expect(JSON.stringify(parseChatCompletionRequest(body))).toBe(JSON.stringify(wholeSchema(body)));
    const bad = { ...body, messages: [...body.messages.slice(0, 5), { role: 'tool', content: 'x' }, ...body.messages.slice(5)] };
    expect(answerOf(parseChatCompletionRequest, bad)).toEqual({
      error: { status: 400, message: "Missing required parameter: 'messages[5].tool_call_id'.", param: 'messages[5].tool_call_id', code: 'missing_required_parameter' },
    });
  });
});
