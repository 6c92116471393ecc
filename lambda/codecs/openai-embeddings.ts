// OpenAI embeddings ↔ the canonical embedding call and answer, both ways.
import type { EmbeddingAnswer, EmbeddingCall } from '../core/embedding';
import { embeddingInputs, float32Base64, float32FromBase64, type EmbeddingRequest, type EmbeddingsAnswer } from '../contract/embeddings';

const NAMED_FIELDS = new Set(['model', 'input', 'encoding_format', 'dimensions', 'user']);

export function decodeEmbeddingRequest(request: EmbeddingRequest): EmbeddingCall {
  const extensions = Object.fromEntries(Object.entries(request).filter(([k, v]) => !NAMED_FIELDS.has(k) && v !== undefined));
  return {
    model: request.model,
    inputs: embeddingInputs(request),
    ...(request.dimensions !== undefined && { dimensions: request.dimensions }),
    ...(request.encoding_format !== undefined && { encodingFormat: request.encoding_format }),
    ...(request.user !== undefined && { user: request.user }),
    ...(Object.keys(extensions).length > 0 && { extensions: { wire: 'openai-embeddings' as const, fields: extensions } }),
  };
}

/** For an OpenAI-compatible upstream: floats always (the endpoint encodes base64 itself), inputs as arrays. */
export function encodeEmbeddingRequest(call: EmbeddingCall): EmbeddingRequest {
  return {
    model: call.model,
    input: call.inputs.kind === 'text' ? call.inputs.texts : call.inputs.tokens,
    encoding_format: 'float',
    ...(call.dimensions !== undefined && { dimensions: call.dimensions }),
    ...(call.user !== undefined && { user: call.user }),
    ...(call.extensions?.wire === 'openai-embeddings' && call.extensions.fields),
  };
}

export function encodeEmbeddingsAnswer(answer: EmbeddingAnswer, encodingFormat: 'float' | 'base64' = 'float'): EmbeddingsAnswer {
  return {
    object: 'list',
    model: answer.model,
    data: answer.vectors.map((vector, index) => ({ object: 'embedding', index, embedding: encodingFormat === 'base64' ? float32Base64(vector) : vector })),
    usage: { prompt_tokens: answer.inputTokens, total_tokens: answer.inputTokens },
  };
}

/** An upstream's answer, vectors put back in input order (by `index`); base64 vectors decoded. */
export function decodeEmbeddingsAnswer(wire: EmbeddingsAnswer): EmbeddingAnswer {
  const vectors = [...wire.data].sort((a, b) => a.index - b.index).map((d) => {
    if (typeof d.embedding !== 'string') return d.embedding;
    const floats = float32FromBase64(d.embedding);
    if (!floats) throw new Error(`Embedding ${d.index} is not base64 float32 values.`);
    return floats;
  });
  return { model: wire.model, vectors, inputTokens: wire.usage?.prompt_tokens ?? 0 };
}
