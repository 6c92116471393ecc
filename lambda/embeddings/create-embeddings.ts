import type { ModelEntry } from '../catalog';
import { admitRun, JSON_HEADERS, modelFor, routeName, scopedResponse, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import {
  embeddingInputs,
  float32Base64,
  float32FromBase64,
  parseEmbeddingRequest,
  type EmbeddingInputs,
  type EmbeddingsAnswer,
  type EncodingFormat,
} from '../contract/embeddings';
import { invalidRequest, upstreamError } from '../contract/errors';
import { countTokens } from '../money/tokens';
import type { EmbeddingVector } from '../providers/types';
import type { KeyRecord } from '../store/keys';

/**
 * `POST /v1/embeddings` once the key is known: validate, admit (the input tokens, no output),
 * try the routes, answer in the `encoding_format` asked, and settle once on the provider's count.
 */
export async function createEmbeddings(deps: CompletionDeps, scope: RequestScope, key: KeyRecord, body: unknown): Promise<Response> {
  const request = parseEmbeddingRequest(body);
  const model = modelFor(deps, key, request.model, 'embedding');
  if (request.dimensions !== undefined && model.dimensions !== undefined && request.dimensions > model.dimensions) {
    throw invalidRequest(`The model '${model.id}' makes vectors of at most ${model.dimensions} dimensions.`, 'dimensions');
  }
  const inputs = embeddingInputs(request);
  const estimate = estimateEmbeddingTokens(inputs, model);
  const run = await admitRun(deps, scope, key, model, { promptTokens: estimate, outputLimit: 0, n: 1, stream: false });
  let answer: EmbeddingsAnswer;
  try {
    const { value, route } = await run.route(request, (provider, call) => {
      if (!provider.embed) throw upstreamError(`The '${call.route.provider}' provider cannot serve embeddings.`, { fallback: true });
      return provider.embed({ ...call, modelDimensions: model.dimensions });
    });
    const format: EncodingFormat = request.encoding_format ?? 'float';
    const promptTokens = value.promptTokens ?? estimate;
    answer = {
      object: 'list',
      data: value.vectors.map((vector, index) => ({ object: 'embedding', index, embedding: inFormat(vector, format) })),
      model: model.id,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
    run.finish({
      status: 'completed',
      httpStatus: 200,
      // Without the provider's count the usage stays absent, and settlement bills the gateway's own.
      usage: value.promptTokens === undefined ? undefined : { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens },
      completionText: '',
      route: routeName(route),
    });
  } catch (err) {
    throw run.failedWith(err);
  }
  return scopedResponse(scope, JSON.stringify(answer), JSON_HEADERS);
}

/**
 * Embedding models whose tokenizer the gateway does not ship (Titan's, Cohere's) may count a text
 * above o200k, plus a start or end token per input: their hold takes this margin and one token
 * per input, so that it stays above what the provider bills.
 */
export const EMBEDDING_TEXT_MARGIN = 1.25;

/**
 * Input tokens for the hold and the minute's token count (corrected to the provider's count at
 * settlement): each text counted on its own, token arrays by their length. No output is held. A
 * model counting with cl100k_base (OpenAI's) is counted with it, as its provider bills
 * (o200k × 1.25 was 5× short on Gujarati); any other with o200k and the margin.
 */
export function estimateEmbeddingTokens(inputs: EmbeddingInputs, model: Pick<ModelEntry, 'tokenRules' | 'tokenizer'>): number {
  if (inputs.kind === 'tokens') return inputs.tokens.reduce((sum, tokens) => sum + tokens.length, 0);
  if (model.tokenizer === 'cl100k_base') return inputs.texts.reduce((sum, t) => sum + countTokens(t, 'cl100k_base'), 0);
  const margin = Math.max(EMBEDDING_TEXT_MARGIN, model.tokenRules.textMargin);
  return inputs.texts.reduce((sum, t) => sum + Math.ceil(countTokens(t) * margin) + 1, 0);
}

/** A vector as the client asked for it; an upstream that sent the other format is converted. */
function inFormat(vector: EmbeddingVector, format: EncodingFormat): number[] | string {
  if (format === 'base64') return typeof vector === 'string' ? vector : float32Base64(vector);
  if (typeof vector !== 'string') return vector;
  const numbers = float32FromBase64(vector);
  if (!numbers) throw upstreamError('The upstream sent an embedding that is not base64 float32 values.');
  return numbers;
}
