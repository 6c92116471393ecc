import fc from 'fast-check';
import { embeddingInputs, float32Base64, float32FromBase64, parseEmbeddingRequest } from '../../lambda/contract/embeddings';
import { GatewayError } from '../../lambda/contract/errors';

describe('embeddings contract: base64 vectors', () => {
  it('encodes little-endian float32, as the openai SDK decodes it', () => {
    expect(float32Base64([1.5, -2])).toBe('AADAPwAAAMA=');
    expect(float32FromBase64('AADAPwAAAMA=')).toEqual([1.5, -2]);
  });

  it('round-trips any float32 vector exactly', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true }), { minLength: 1, maxLength: 64 }), (vector) => {
        expect(float32FromBase64(float32Base64(vector))).toEqual(vector.map((v) => Math.fround(v)));
      }),
    );
  });

  it('refuses text that is not whole float32 values', () => {
    expect(float32FromBase64('AAA=')).toBeUndefined();
    expect(float32FromBase64('')).toBeUndefined();
  });
});

describe('embeddings contract: the request', () => {
  it('reads each input shape the spec allows', () => {
    expect(embeddingInputs(parseEmbeddingRequest({ model: 'm', input: 'a' }))).toEqual({ kind: 'text', texts: ['a'] });
    expect(embeddingInputs(parseEmbeddingRequest({ model: 'm', input: ['a', 'b'] }))).toEqual({ kind: 'text', texts: ['a', 'b'] });
    expect(embeddingInputs(parseEmbeddingRequest({ model: 'm', input: [1, 2] }))).toEqual({ kind: 'tokens', tokens: [[1, 2]] });
    expect(embeddingInputs(parseEmbeddingRequest({ model: 'm', input: [[1], [2, 3]] }))).toEqual({ kind: 'tokens', tokens: [[1], [2, 3]] });
  });

  it('keeps unknown top-level fields for OpenAI-compatible upstreams', () => {
    expect(parseEmbeddingRequest({ model: 'm', input: 'a', truncate: 'END' })).toMatchObject({ truncate: 'END' });
  });

  it.each([
    [[1, 'a'], 'input[0]'],
    [[-1], 'input[0]'],
    [{ text: 'a' }, 'input'],
  ])('refuses input %j with a 400 naming %s', (input, param) => {
    let error: unknown;
    try {
      parseEmbeddingRequest({ model: 'm', input });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ status: 400, param });
  });
});
