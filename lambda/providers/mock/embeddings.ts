import { createHash } from 'node:crypto';
import { embeddingInputs } from '../../contract/embeddings';
import type { EmbeddingCall, EmbeddingResult } from '../types';

/** The mock's vector length when neither the request nor the catalog names one (text-embedding-3-small's). */
export const MOCK_EMBEDDING_DIMENSIONS = 1536;

/**
 * Deterministic unit vectors: the same input always gets the same vector, different inputs
 * different ones. Value i depends only on the input and i, so a shorter `dimensions` is the
 * longer vector cut and renormalized, as OpenAI's text-embedding-3 models shorten theirs.
 */
export function mockEmbeddings(call: EmbeddingCall): EmbeddingResult {
  const inputs = embeddingInputs(call.request);
  const dimensions = call.request.dimensions ?? call.modelDimensions ?? MOCK_EMBEDDING_DIMENSIONS;
  if (inputs.kind === 'tokens') {
    return {
      vectors: inputs.tokens.map((tokens) => mockVector(`tokens:${tokens.join(',')}`, dimensions)),
      promptTokens: inputs.tokens.reduce((sum, t) => sum + t.length, 0),
    };
  }
  return {
    vectors: inputs.texts.map((text) => mockVector(`text:${text}`, dimensions)),
    // About four characters a token, as the mock's chat answers count.
    promptTokens: inputs.texts.reduce((sum, t) => sum + Math.max(1, Math.ceil(t.length / 4)), 0),
  };
}

export function mockVector(seed: string, dimensions: number): number[] {
  const values = new Array<number>(dimensions);
  const seedHash = createHash('sha256').update(seed).digest();
  for (let block = 0; block * 8 < dimensions; block++) {
    const bytes = createHash('sha256').update(seedHash).update(String(block)).digest();
    for (let j = 0; j < 8 && block * 8 + j < dimensions; j++) values[block * 8 + j] = bytes.readUInt32LE(j * 4) / 0x80000000 - 1;
  }
  const norm = Math.sqrt(values.reduce((sum, v) => sum + v * v, 0)) || 1;
  return values.map((v) => v / norm);
}
