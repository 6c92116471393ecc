import type { z } from 'zod';
import { zodOnFirstUse } from './zod';
import type { CreateEmbeddingResponse, Embedding } from 'openai/resources/embeddings';
import { parseRequestBody } from './request';

/** OpenAI's limit on the number of inputs of one request. */
export const MAX_EMBEDDING_INPUTS = 2048;

const INPUT_KINDS = 'a string, an array of strings, an array of token ids or an array of token-id arrays';

/** The embeddings request as the gateway accepts it; unknown top-level fields are kept (for OpenAI-compatible upstreams). */
function buildEmbeddingRequestSchema() {
  const { z } = zodOnFirstUse();
  const text = z.string().min(1, 'must not be an empty string');
  const tokenId = z.number().int().nonnegative();

  /** `input` as OpenAI's spec allows it: one text, texts, one token array, or token arrays. */
  const input = z.union(
    [
      text,
      z.array(text).min(1).max(MAX_EMBEDDING_INPUTS),
      z.array(tokenId).min(1).max(MAX_EMBEDDING_INPUTS),
      z.array(z.array(tokenId).min(1, 'must not be an empty token array')).min(1).max(MAX_EMBEDDING_INPUTS),
    ],
    { errorMap: (issue, ctx) => (issue.code === 'invalid_union' ? { message: `must be ${INPUT_KINDS}` } : { message: ctx.defaultError }) },
  );

  return z
    .object({
      model: z.string().min(1),
      input,
      encoding_format: z.enum(['float', 'base64']).optional(),
      dimensions: z.number().int().min(1).optional(),
      user: z.string().optional(),
      /** Not OpenAI's: Cohere's (and some OpenAI-compatible servers') word for what the text is for. */
      input_type: z.string().min(1).optional(),
    })
    .passthrough();
}

let requestSchema: ReturnType<typeof buildEmbeddingRequestSchema> | undefined;

/** Built on first use, not at load (the chat function's cold start). */
export function embeddingRequestSchema(): ReturnType<typeof buildEmbeddingRequestSchema> {
  return (requestSchema ??= buildEmbeddingRequestSchema());
}

export type EmbeddingRequest = z.infer<ReturnType<typeof buildEmbeddingRequestSchema>>;
export type EncodingFormat = NonNullable<EmbeddingRequest['encoding_format']>;

/** Validates a parsed JSON body; throws a 400 GatewayError naming the first offending field. */
export function parseEmbeddingRequest(body: unknown): EmbeddingRequest {
  return parseRequestBody(embeddingRequestSchema(), body);
}

/** The inputs of a request, one per vector to answer: texts, or token-id arrays. */
export type EmbeddingInputs = { kind: 'text'; texts: string[] } | { kind: 'tokens'; tokens: number[][] };

export function embeddingInputs(request: Pick<EmbeddingRequest, 'input'>): EmbeddingInputs {
  const value = request.input;
  if (typeof value === 'string') return { kind: 'text', texts: [value] };
  if (value.every((item): item is string => typeof item === 'string')) return { kind: 'text', texts: value };
  if (value.every((item): item is number => typeof item === 'number')) return { kind: 'tokens', tokens: [value] };
  return { kind: 'tokens', tokens: value as number[][] };
}

export function inputCount(inputs: EmbeddingInputs): number {
  return inputs.kind === 'text' ? inputs.texts.length : inputs.tokens.length;
}

/** OpenAI's `Embedding`, whose `embedding` is a base64 string when the client asked for `encoding_format: "base64"`. */
export type EmbeddingObject = Omit<Embedding, 'embedding'> & { embedding: number[] | string };

/** OpenAI's `CreateEmbeddingResponse`, with base64 vectors allowed (the spec's schema knows only floats). */
export type EmbeddingsAnswer = Omit<CreateEmbeddingResponse, 'data'> & { data: EmbeddingObject[] };

/** A vector as `encoding_format: "base64"` sends it: little-endian IEEE-754 float32 values, base64-encoded. */
export function float32Base64(vector: readonly number[]): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i], i * 4);
  return bytes.toString('base64');
}

/** The numbers of a base64 vector; undefined when the text is not whole float32 values. */
export function float32FromBase64(encoded: string): number[] | undefined {
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length === 0 || bytes.length % 4 !== 0) return undefined;
  const out = new Array<number>(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}
