import fc from 'fast-check';
import { keysIfSame, letGo, spliceJson, topLevelSpans, type JsonSource } from '../../lambda/contract/json-splice';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const sourceOf = (text: string): JsonSource & { value: Record<string, any> } => ({ bytes: Buffer.from(text, 'utf8'), text, value: JSON.parse(text) });
const spanTexts = (text: string) => {
  const spans = topLevelSpans(text);
  return spans && Object.fromEntries([...spans].map(([k, s]) => [k, { text: text.slice(s.start, s.end), keys: s.keys }]));
};
const long = 'x'.repeat(3000);

describe('topLevelSpans: each top-level value of a JSON object, as written', () => {
  it('finds values around escapes, nesting, spacing and multi-byte text', () => {
    const text = ' { "a" : "q\\"uo\\\\" ,\n "mess\\u0061ges":[ {"role":"user","content":"caf\\u00e9 é \\\\"} , {"x":{"y":[1,{"z":"]}"}]}} ] ,"n":-1.5e3,"t":true, "nul" :null }\n';
    expect(spanTexts(text)).toEqual({
      a: { text: '"q\\"uo\\\\"', keys: 0 },
      messages: { text: '[ {"role":"user","content":"caf\\u00e9 é \\\\"} , {"x":{"y":[1,{"z":"]}"}]}} ]', keys: 5 },
      n: { text: '-1.5e3', keys: 0 },
      t: { text: 'true', keys: 0 },
      nul: { text: 'null', keys: 0 },
    });
  });

  it('keeps the last of a top-level key written twice, as JSON.parse does', () => {
    expect(spanTexts('{"m":[1],"m":[2,3]}')).toEqual({ m: { text: '[2,3]', keys: 0 } });
  });

  it('answers nothing for what is not an object', () => {
    expect(spanTexts('[1,2]')).toBeUndefined();
    expect(spanTexts('"s"')).toBeUndefined();
    expect(spanTexts('{}')).toEqual({});
  });

  it('reads back every value of any object JSON.stringify writes, indented or not', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.constantFrom(undefined, 2, '\t'), (object, indent) => {
        const text = JSON.stringify(object, null, indent);
        const value = JSON.parse(text);
        const spans = spanTexts(text)!;
        expect(Object.keys(spans).sort()).toEqual(Object.keys(value).sort());
        for (const key of Object.keys(value)) expect(JSON.parse(spans[key].text)).toEqual(value[key]);
      }),
      { numRuns: 300 },
    );
  });
});

describe('spliceJson: the client bytes of a field sent unchanged, the rest serialised', () => {
  const client = `{ "model": "m", "messages" : [ {"role": "user", "content": "caf\\u00e9 ${long}"} ], "stream": true }`;

  it('copies a large field the encoder left as the client wrote it, byte for byte, in the encoder key order', () => {
    const source = sourceOf(client);
    const encoded = { model: 'upstream-model', messages: source.value.messages, max_tokens: undefined, stream: true, stream_options: { include_usage: true } };
    const out = spliceJson(encoded, source);
    expect(Buffer.isBuffer(out)).toBe(true);
    const text = out.toString();
    expect(text).toContain(`"messages":[ {"role": "user", "content": "caf\\u00e9 ${long}"} ]`);
    expect(text.startsWith('{"model":"upstream-model","messages":[')).toBe(true);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(encoded)));
  });

  it('serialises a field the encoder changed, however small the change', () => {
    const source = sourceOf(client);
    const messages = [{ role: 'user', content: `café ${long}` }, { role: 'user', content: 'more' }];
    const out = spliceJson({ model: 'm', messages }, source);
    expect(out).toBe(JSON.stringify({ model: 'm', messages }));
  });

  it('serialises a field whose bytes name a key twice (the parse kept one, another parser may keep the other)', () => {
    const text = `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}],"content":"${long}"}]}`;
    const source = sourceOf(text);
    expect(source.value.messages[0].content).toBe(long);
    const out = spliceJson({ model: 'm', messages: source.value.messages }, source);
    expect(out).toBe(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: long }] }));
  });

  it('serialises everything when the bytes are not UTF-8 (what was parsed is not what would be sent)', () => {
    const bytes = Buffer.concat([Buffer.from(`{"model":"m","messages":[{"role":"user","content":"${long}`), Buffer.from([0xff]), Buffer.from('"}]}')]);
    const text = bytes.toString('utf8');
    const value = JSON.parse(text);
    const out = spliceJson({ model: 'm', messages: value.messages }, { bytes, text, value });
    expect(typeof out).toBe('string');
    expect(JSON.parse(out as string).messages[0].content.endsWith('\ufffd')).toBe(true);
  });

  it('serialises small bodies and small fields, and without a source', () => {
    const small = sourceOf('{"model":"m","messages":[{"role":"user","content":"hi"}]}');
    expect(spliceJson({ model: 'm', messages: small.value.messages }, small)).toBe('{"model":"m","messages":[{"role":"user","content":"hi"}]}');
    const source = sourceOf(client);
    expect(typeof spliceJson({ model: 'm', messages: source.value.messages }, source, 1_000_000)).toBe('string');
    expect(spliceJson({ model: 'm', messages: source.value.messages }, undefined)).toBe(JSON.stringify({ model: 'm', messages: source.value.messages }));
  });

  it('serialises once the source is let go (its bytes and text dropped, the call made)', () => {
    const source = sourceOf(client);
    const messages = source.value.messages;
    expect(Buffer.isBuffer(spliceJson({ model: 'm', messages }, source))).toBe(true);
    letGo(source);
    expect(source.bytes.length + source.text.length).toBe(0);
    expect(spliceJson({ model: 'm', messages }, source)).toBe(JSON.stringify({ model: 'm', messages }));
  });

  it('always means what the encoder made, whatever the client wrote and whatever the encoder changed', () => {
    const entry = fc.record({ role: fc.constantFrom('user', 'assistant'), content: fc.oneof(fc.string(), fc.constant(long)) });
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), fc.constantFrom(undefined, 1, ' '), fc.nat(3), (messages, indent, change) => {
        const text = JSON.stringify({ model: 'm', tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', description: long } } }], messages }, null, indent);
        const source = sourceOf(text);
        const encoded: Record<string, unknown> = { model: 'up', messages: source.value.messages, tools: source.value.tools };
        if (change === 1) encoded.messages = [...source.value.messages.slice(1), { role: 'user', content: 'x' }];
        if (change === 2) encoded.tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
        const out = spliceJson(encoded, source, 100);
        expect(JSON.parse(out.toString())).toEqual(encoded);
      }),
      { numRuns: 200 },
    );
  });
});

describe('keysIfSame: equal as JSON, and how many keys the parsed value holds', () => {
  it('counts the keys of values that serialise to the same JSON', () => {
    const parsed = JSON.parse('{"a":[{"b":1,"c":"x"},null,true],"d":{}}');
    expect(keysIfSame({ d: {}, a: [{ c: 'x', b: 1 }, null, true] }, parsed)).toBe(4);
    expect(keysIfSame({ a: parsed.a, d: parsed.d, e: undefined }, parsed)).toBe(4);
    expect(keysIfSame(parsed, parsed)).toBe(4);
    expect(keysIfSame('s', 's')).toBe(0);
  });

  it('answers -1 for anything that would serialise otherwise', () => {
    const parsed = JSON.parse('{"a":[1,2],"b":{"c":null}}');
    expect(keysIfSame({ a: [1, 2] }, parsed)).toBe(-1);
    expect(keysIfSame({ a: [1, 2], b: { c: null }, x: 1 }, parsed)).toBe(-1);
    expect(keysIfSame({ a: [2, 1], b: { c: null } }, parsed)).toBe(-1);
    expect(keysIfSame({ a: [1, 2], b: { c: undefined } }, parsed)).toBe(-1);
    expect(keysIfSame({ a: [1, 2, undefined], b: { c: null } }, parsed)).toBe(-1);
    expect(keysIfSame({ a: { 0: 1, 1: 2 }, b: { c: null } }, parsed)).toBe(-1);
    expect(keysIfSame(new Date(0), JSON.parse('"1970-01-01T00:00:00.000Z"'))).toBe(-1);
    expect(keysIfSame({ a: [1, 2], b: { c: null, toJSON: () => ({ c: null }) } }, parsed)).toBe(-1);
    expect(keysIfSame(Number.NaN, null)).toBe(-1);
    expect(keysIfSame(1, '1')).toBe(-1);
  });

  it('agrees with a round trip through JSON.stringify on any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        const parsedB = JSON.parse(JSON.stringify(b) ?? 'null');
        const same = JSON.stringify(a) === JSON.stringify(parsedB);
        // Key order aside: equal as values when their sorted serialisations match.
        const sorted = (v: unknown): unknown => (Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v);
        const equal = JSON.stringify(sorted(JSON.parse(JSON.stringify(a) ?? 'null'))) === JSON.stringify(sorted(parsedB));
        const keys = keysIfSame(JSON.parse(JSON.stringify(a) ?? 'null'), parsedB);
        expect(keys >= 0).toBe(equal);
        if (same) expect(keys).toBeGreaterThanOrEqual(0);
        const count = (v: unknown): number =>
          Array.isArray(v) ? v.reduce((n: number, i) => n + count(i), 0) : v && typeof v === 'object' ? Object.values(v).reduce((n: number, i) => n + 1 + count(i), 0) : 0;
        expect(keysIfSame(parsedB, parsedB)).toBe(count(parsedB));
      }),
      { numRuns: 300 },
    );
  });
});
