import type { RecordedRequest, StandInHandler, StandInReply } from '../stand-in';
import { errorReply } from './stand-in';

/**
 * Bedrock's InvokeModel for embedding models as the docs describe it (POST /model/{id}/invoke):
 * Titan Text Embeddings answers `{embedding, inputTextTokenCount, embeddingsByType}` for one
 * `inputText`; Cohere Embed answers `embeddings` for up to 96 `texts` (by type when
 * `embedding_types` was sent). Both send the billed tokens in `x-amzn-bedrock-input-token-count`.
 */
export interface EmbeddingStandInOptions {
  /** Leave `inputTextTokenCount` out of Titan's body. */
  titanBodyTokens?: boolean;
  /** Send the token-count header. @default true */
  tokenHeader?: boolean;
  /** Answer this error instead, for the model ids that match. */
  failFor?: { model: RegExp; reply: StandInReply };
}

/** What the stand-in bills for a text: one token per word, never what the gateway's tokenizer counts. */
export const standInTokens = (text: string) => text.split(/\s+/).filter(Boolean).length + 1;

/** A deterministic vector whose values are exact in float32 (multiples of 1/1024), so base64 round trips compare equal. */
export function standInVector(text: string, dimensions: number): number[] {
  let seed = 0;
  for (const ch of text) seed = (seed * 31 + ch.codePointAt(0)!) % 1_000_003;
  return Array.from({ length: dimensions }, (_, i) => (((seed + i * 7919) % 2048) - 1024) / 1024);
}

export function bedrockEmbeddingHandler(options: EmbeddingStandInOptions = {}): StandInHandler {
  return (request: RecordedRequest) => {
    const match = /^\/model\/([^/]+)\/invoke$/.exec(request.path);
    if (!match) return notFound(request.path);
    const modelId = decodeURIComponent(match[1]);
    if (options.failFor?.model.test(modelId)) return options.failFor.reply;
    const body = JSON.parse(request.body.toString('utf8'));
    if (modelId.includes('titan-embed')) {
      const dimensions = body.dimensions ?? (modelId.includes('v2') ? 1024 : 1536);
      const embedding = standInVector(body.inputText, dimensions);
      const tokens = standInTokens(body.inputText);
      const answer = {
        embedding,
        embeddingsByType: { float: embedding },
        ...(options.titanBodyTokens !== false && { inputTextTokenCount: tokens }),
      };
      return reply(answer, options.tokenHeader === false ? undefined : tokens);
    }
    if (modelId.includes('cohere.embed')) {
      if (!Array.isArray(body.texts) || body.texts.length > 96 || !body.input_type) {
        return errorReply(400, 'ValidationException', 'Malformed input request, please reformat your input and try again.');
      }
      const vectors = body.texts.map((t: string) => standInVector(t, body.output_dimension ?? 1024));
      const tokens = body.texts.reduce((sum: number, t: string) => sum + standInTokens(t), 0);
      const answer = body.embedding_types
        ? { id: 'emb-1', response_type: 'embeddings_by_type', embeddings: { float: vectors }, texts: body.texts }
        : { id: 'emb-1', response_type: 'embeddings_floats', embeddings: vectors, texts: body.texts };
      return reply(answer, options.tokenHeader === false ? undefined : tokens);
    }
    return notFound(request.path);
  };
}

function reply(body: unknown, tokens: number | undefined): StandInReply {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-amzn-requestid': 'b7f1c6a2-0000-4000-8000-00000000e001' };
  if (tokens !== undefined) headers['x-amzn-bedrock-input-token-count'] = String(tokens);
  return { status: 200, headers, parts: [JSON.stringify(body)] };
}

function notFound(path: string): StandInReply {
  return { status: 404, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify({ message: `no stand-in route for ${path}` })] };
}
