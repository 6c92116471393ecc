import fc from 'fast-check';
import { decodeEmbeddingRequest, decodeEmbeddingsAnswer, encodeEmbeddingRequest, encodeEmbeddingsAnswer } from '../../lambda/codecs/openai-embeddings';
import type { EmbeddingCall } from '../../lambda/core/embedding';
import { parseEmbeddingRequest } from '../../lambda/contract/embeddings';
import { openAiValidator } from '../support/openai-schema';
import { text, word } from './arbitraries';

const call: fc.Arbitrary<EmbeddingCall> = fc.record({
  model: word,
  inputs: fc.oneof(
    fc.record({ kind: fc.constant('text' as const), texts: fc.array(text, { minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('tokens' as const), tokens: fc.array(fc.array(fc.nat({ max: 100_000 }), { minLength: 1, maxLength: 5 }), { minLength: 2, maxLength: 3 }) }),
  ),
  dimensions: fc.integer({ min: 1, max: 3_072 }),
  user: word,
  extensions: fc.constant({ wire: 'openai-embeddings' as const, fields: { input_type: 'search_query' } }),
}, { requiredKeys: ['model', 'inputs'] });

describe('the OpenAI embeddings codec', () => {
  it('decodes the upstream request it encodes (decode ∘ encode = identity, but the format: upstreams always answer floats)', () => {
    fc.assert(fc.property(call, (c) => {
      const wire = parseEmbeddingRequest(JSON.parse(JSON.stringify(encodeEmbeddingRequest(c))));
      expect(decodeEmbeddingRequest(wire)).toEqual({ ...c, encodingFormat: 'float' });
    }));
  });

  it('answers float and base64 vectors that decode to the same float32 values, in input order; the float answer is valid for the spec', () => {
    const vector = fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }).map(Math.fround), { minLength: 1, maxLength: 8 });
    fc.assert(fc.property(fc.array(vector, { minLength: 1, maxLength: 4 }), fc.nat(), word, (vectors, inputTokens, model) => {
      const answer = { model, vectors: vectors.map((v) => v.map((x) => (Object.is(x, -0) ? 0 : x))), inputTokens };
      const floats = encodeEmbeddingsAnswer(answer);
      const validate = openAiValidator('CreateEmbeddingResponse');
      expect(validate(floats)).toBe(true);
      expect(decodeEmbeddingsAnswer(JSON.parse(JSON.stringify(floats)))).toEqual(answer);
      const base64 = encodeEmbeddingsAnswer(answer, 'base64');
      expect(decodeEmbeddingsAnswer({ ...base64, data: [...base64.data].reverse() })).toEqual(answer);
    }));
  });
});
