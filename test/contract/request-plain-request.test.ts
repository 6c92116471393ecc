// parseChatCompletionRequest takes a request of the common shape whole without zod
// (`plainChatRequest`): its messages, and the top-level fields whose checks are simple. zod's
// schema stays the one definition: for any request the answer (the value, keys in the same order,
// or the 400) is the whole schema's.
import fc from 'fast-check';
import { parseAnswer as answerOf } from '../support/parse-answer';
import { CHAT_REQUEST_KEYS, chatCompletionRequestSchema, parseChatCompletionRequest, parseRequestBody, plainChatRequest } from '../../lambda/contract/request';

const value = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.double(), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]));
const number = fc.oneof(fc.integer({ min: -3, max: 130 }), fc.double({ min: -3, max: 3, noNaN: true }), fc.constantFrom(0, 1, 2, -2, 0.5, 128, 129, 1.5));
// In the range mostly, on its bounds and just beyond now and then.
const near = (lo: number, hi: number, int = false) =>
  fc.oneof(
    { arbitrary: int ? fc.integer({ min: Math.max(lo, -1000), max: Math.min(hi, 1000) }) : fc.double({ min: lo, max: hi, noNaN: true }), weight: 8 },
    { arbitrary: fc.constantFrom(lo, hi, lo - 1, hi + 1, lo + 0.5), weight: 1 },
    { arbitrary: number, weight: 1 },
  );
const message = fc.oneof(
  { arbitrary: fc.record({ role: fc.constantFrom('system', 'user', 'developer'), content: fc.string({ maxLength: 5 }) }), weight: 6 },
  fc.record({ role: fc.constantFrom('system', 'user', 'developer'), content: fc.oneof(fc.string({ maxLength: 5 }), value) }),
  fc.record({ role: fc.constant('assistant'), content: fc.oneof(fc.string({ maxLength: 5 }), fc.constant(null)) }),
  fc.record({ role: fc.constant('user'), content: fc.constant([{ type: 'image_url', image_url: { url: 'https://x/i.png' } }]) }),
);
// Mostly values near what the schema takes, now and then anything; each key present or not.
const field = (x: fc.Arbitrary<unknown>) => fc.option(fc.oneof({ arbitrary: x, weight: 12 }, { arbitrary: value, weight: 1 }), { nil: undefined, freq: 2 });
const rare = (x: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 11 }, { arbitrary: x, weight: 1 });
const request = fc
  .record({
    model: fc.oneof({ arbitrary: fc.constant('gpt-4o'), weight: 12 }, { arbitrary: fc.constant(''), weight: 1 }, { arbitrary: value, weight: 1 }),
    messages: fc.oneof({ arbitrary: fc.array(message, { minLength: 1, maxLength: 3 }), weight: 12 }, { arbitrary: fc.constant([]), weight: 1 }, { arbitrary: value, weight: 1 }),
    stream: field(fc.boolean()),
    stream_options: field(fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), value), extra: value }, { requiredKeys: [] }), fc.constant(null))),
    temperature: field(near(0, 2)),
    top_p: field(near(0, 1)),
    max_tokens: field(near(1, 1e6, true)),
    max_completion_tokens: field(near(1, 1e6, true)),
    frequency_penalty: field(near(-2, 2)),
    presence_penalty: field(near(-2, 2)),
    stop: field(fc.oneof(fc.string({ maxLength: 3 }), fc.array(fc.oneof({ arbitrary: fc.string({ maxLength: 3 }), weight: 8 }, { arbitrary: value, weight: 1 }), { maxLength: 5 }))),
    n: field(near(1, 128, true)),
    seed: field(near(-1e6, 1e6, true)),
    user: field(fc.string({ maxLength: 3 })),
    parallel_tool_calls: field(fc.boolean()),
    tools: rare(fc.constant([{ type: 'function', function: { name: 'f' } }])),
    logprobs: rare(fc.boolean()),
    metadata: field(value),
    reasoning_effort: field(value),
    toString: rare(value),
  })
  .map((body) => Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)) as Record<string, unknown>);
const whole = (body: unknown) => parseRequestBody(chatCompletionRequestSchema(), body);
// The schema as zod builds it: an object refined (`superRefine`).
const schemaKeys = () => Object.keys((chatCompletionRequestSchema() as unknown as { _def: { schema: { shape: object } } })._def.schema.shape);

describe('plainChatRequest', () => {
  it("names the schema's own keys in the schema's order", () => {
    expect([...CHAT_REQUEST_KEYS]).toEqual(schemaKeys());
  });

  it("answers any request as the whole schema does: the same value, keys in zod's order, or the same 400", () => {
    let taken = 0;
    fc.assert(
      fc.property(request, (body) => {
        if (plainChatRequest(body)) taken++;
        expect(answerOf(parseChatCompletionRequest, body)).toEqual(answerOf(whole, body));
      }),
      { numRuns: 6000 },
    );
    // Not a property that holds by taking nothing.
    expect(taken).toBeGreaterThan(300);
  });

  it('takes a plain request of every field it reads, and gives what zod gives', () => {
    const body = {
      extra: { a: 1 },
      user: 'u',
      seed: -5,
      n: 2,
      stop: ['a', 'b'],
      presence_penalty: -2,
      frequency_penalty: 2,
      max_completion_tokens: 100,
      max_tokens: null,
      top_p: 1,
      temperature: 0,
      stream_options: { include_usage: true, other: 1 },
      stream: true,
      messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hi', name: 'n' }],
      model: 'gpt-4o',
      parallel_tool_calls: false,
    };
    const plain = plainChatRequest(body);
    expect(plain).toBeDefined();
    expect(JSON.stringify(plain)).toBe(JSON.stringify(whole(body)));
    // zod's copies, not the client's objects.
    expect(plain!.stop).not.toBe(body.stop);
    expect(plain!.stream_options).toEqual({ include_usage: true });
  });

  it('leaves to zod tools, logprobs, a response format, a key named __proto__, and what the schema refuses or refines', () => {
    const base = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] };
    expect(plainChatRequest(base)).toBeDefined();
    for (const extra of [
      { tools: [] },
      { logprobs: true },
      { top_logprobs: 2 },
      { response_format: { type: 'text' } },
      { tool_choice: 'auto' },
      { stream_options: { include_usage: true } },
      { stream: false, stream_options: { include_usage: true } },
      { temperature: 2.5 },
      { max_tokens: 1.5 },
      { n: 129 },
      { stop: [] },
      { user: null },
      { parallel_tool_calls: null },
    ]) {
      expect(plainChatRequest({ ...base, ...extra })).toBeUndefined();
    }
    expect(plainChatRequest(JSON.parse('{"model":"m","messages":[{"role":"user","content":"a"}],"__proto__":{"x":1}}'))).toBeUndefined();
    expect(plainChatRequest({ ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x' } }] }] })).toBeUndefined();
  });
});
