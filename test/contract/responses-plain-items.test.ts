// parseCreateResponseRequest takes the input items of the kinds Codex and the SDKs send without
// zod (`plainInputItems`) and checks the rest of the request with the same schema. zod's schema
// stays the one definition: for any request the answer (the value, keys in the same order, or the
// 400) is the whole schema's.
import fc from 'fast-check';
import { parseAnswer as answerOf } from '../support/parse-answer';
import { parseCreateResponseRequest, parseWholeCreateResponseRequest, plainInputItems } from '../../lambda/contract/responses';

const value = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]));
const text = fc.oneof(fc.string({ maxLength: 6 }), fc.constant(''));
const id = fc.oneof(text, fc.constant(null), value);
const extra = { annotations: fc.oneof(fc.constant([]), value), status: value, toString: value };
const part = fc.oneof(
  fc.record({ type: fc.constantFrom('input_text', 'output_text'), text: fc.oneof(text, value), ...extra }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('refusal'), refusal: fc.oneof(text, value), ...extra }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('input_file'), file_id: value, ...extra }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('input_image'), image_url: fc.oneof(fc.constant('https://x/i.png'), value), detail: fc.oneof(fc.constant('low'), value) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constantFrom('text', 'toString', ''), text }, { requiredKeys: ['type'] }),
  value,
);
const content = fc.oneof(text, fc.array(part, { maxLength: 3 }), value);
const item = fc.oneof(
  fc.record({ type: fc.constant('message'), id, role: fc.oneof(fc.constantFrom('user', 'assistant', 'system', 'developer', 'tool'), value), content, phase: value }, { requiredKeys: ['type'] }),
  // EasyInputMessage and ItemReferenceParam: no type.
  fc.record({ role: fc.constantFrom('user', 'assistant', 'developer'), content, id }, { requiredKeys: ['role'] }),
  fc.record({ id, extra: value }, { requiredKeys: ['id'] }),
  fc.record({ type: fc.constant('function_call'), id, call_id: fc.oneof(text, value), name: fc.oneof(text, value), arguments: fc.oneof(text, value), status: value }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('function_call_output'), id, call_id: fc.oneof(text, value), output: content }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('item_reference'), id }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('reasoning'), id, summary: fc.constant([]), content: fc.constant(null), encrypted_content: text }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.oneof(fc.constantFrom('web_search_call', 'toString', 'constructor', ''), fc.constant(null), fc.integer()), id, action: value }),
  value,
);

describe('the Responses request, its input items taken without zod', () => {
  it("takes only the items zod takes, and gives zod's value, keys in its order", () => {
    let taken = 0;
    fc.assert(
      fc.property(item, (x) => {
        const plain = plainInputItems([x]);
        if (!plain) return;
        taken++;
        const whole = parseWholeCreateResponseRequest({ model: 'gpt-5', input: [x] });
        expect(JSON.stringify(plain)).toBe(JSON.stringify(whole.input));
      }),
      { numRuns: 5000 },
    );
    expect(taken).toBeGreaterThan(1000);
  });

  it("answers any request as the whole schema does: the same value, keys in zod's order, or the same 400", () => {
    let taken = 0;
    const request = fc.record(
      {
        model: fc.oneof(fc.constant('gpt-5'), value),
        input: fc.oneof(fc.array(item, { minLength: 1, maxLength: 4 }), text, value),
        instructions: fc.oneof(text, value),
        stream: fc.oneof(fc.boolean(), value),
        store: fc.oneof(fc.boolean(), value),
        background: fc.oneof(fc.boolean(), value),
        previous_response_id: fc.oneof(text, value),
        client_metadata: value,
      },
      { requiredKeys: ['model'] },
    );
    fc.assert(
      fc.property(request, (body) => {
        if (Array.isArray(body.input) && plainInputItems(body.input)) taken++;
        expect(answerOf(parseCreateResponseRequest, body)).toEqual(answerOf(parseWholeCreateResponseRequest, body));
      }),
      { numRuns: 4000 },
    );
    // Not a property that holds by taking nothing.
    expect(taken).toBeGreaterThan(100);
  });

  it("takes a Codex turn whole: messages of text parts, reasoning, function calls and their outputs, keys in any order", () => {
    const input: object[] = [
      { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Be brief.' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'List the files.' }] },
    ];
    for (let i = 0; i < 10; i++) {
      input.push(
        { type: 'reasoning', summary: [{ type: 'summary_text', text: 'hm' }], content: null, encrypted_content: 'gAAAA' },
        { type: 'function_call', name: 'shell', arguments: '{"command":["ls"]}', call_id: `call_${i}` },
        { type: 'function_call_output', call_id: `call_${i}`, output: 'a.ts\nb.ts' },
        { content: [{ annotations: [], text: 'Done.', type: 'output_text' }], role: 'assistant', type: 'message', id: `msg_${i}` },
      );
    }
    input.push({ role: 'user', content: 'go on' }, { id: 'msg_0' }, { type: 'web_search_call', id: 'ws_1', action: {} });
    expect(plainInputItems(input)).toHaveLength(45);
    const body = { model: 'gpt-5', instructions: 'You are Codex.', input, tools: [{ type: 'function', name: 'shell', parameters: { type: 'object' } }], stream: true, store: false };
    expect(JSON.stringify(parseCreateResponseRequest(body))).toBe(JSON.stringify(parseWholeCreateResponseRequest(body)));
  });

  it('leaves to zod an image, a type that is not a string, a key named __proto__, and what the schema refuses', () => {
    expect(plainInputItems([{ type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'https://x/i.png' }] }])).toBeUndefined();
    expect(plainInputItems([{ type: null, role: 'user', content: 'a' }])).toBeUndefined();
    expect(plainInputItems([JSON.parse('{"type":"message","role":"user","content":"a","__proto__":{"x":1}}')])).toBeUndefined();
    expect(plainInputItems([{ type: 'message', role: 'user', content: [JSON.parse('{"type":"input_text","text":"a","__proto__":1}')] }])).toBeUndefined();
    expect(plainInputItems([{ type: 'message', role: 'tool', content: 'a' }])).toBeUndefined();
    expect(plainInputItems([{ type: 'function_call', call_id: '', name: 'n', arguments: '{}' }])).toBeUndefined();
    expect(plainInputItems([{ type: 'function_call_output', call_id: 'c', output: 1 }])).toBeUndefined();
    expect(plainInputItems([{ type: 'reasoning', id: 1 }])).toBeUndefined();
    expect(plainInputItems([{ content: 'no role, no id' }])).toBeUndefined();
  });

  it('words a refused item as the whole schema does', () => {
    const body = { model: 'gpt-5', input: [{ type: 'message', role: 'user', content: 'a' }, { type: 'function_call', call_id: 'c', name: '', arguments: '{}' }] };
    expect(() => parseCreateResponseRequest(body)).toThrow(expect.objectContaining({ status: 400, param: 'input[1].name' }));
  });
});
