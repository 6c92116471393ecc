import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { bedrockSdk } from './sdk';
import { embeddingInputs } from '../../contract/embeddings';
import { invalidRequest, upstreamError } from '../../contract/errors';
import type { EmbeddingCall, EmbeddingResult } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';
import { bedrockError, targetOf } from './errors';

/** Cohere Embed on Bedrock takes at most this many texts per call. */
export const COHERE_BATCH_SIZE = 96;
/** Calls of one request in flight at once (Titan takes one text per call; the client multiplexes them over HTTP/2). */
export const CONCURRENT_CALLS = 8;
/** What the OpenAI request cannot say: what the texts are for. Cohere requires it. */
export const COHERE_DEFAULT_INPUT_TYPE = 'search_document';
const COHERE_INPUT_TYPES = ['search_document', 'search_query', 'classification', 'clustering'];
/** Bedrock reports the tokens it billed in this response header for InvokeModel. */
const INPUT_TOKEN_HEADER = 'x-amzn-bedrock-input-token-count';

/** The embedding model families Bedrock serves, by the shape of their request and answer. */
interface Family {
  api: 'titan' | 'cohere';
  /** The `dimensions` values the model accepts. */
  dimensions: number[];
  /** False for models of one fixed size: nothing is sent for `dimensions`. */
  sendsDimensions: boolean;
}

/** The family of a Bedrock model id (or inference profile id, `us.cohere.embed-v4:0`). */
export function embeddingFamily(modelId: string): Family | undefined {
  if (/amazon\.titan-embed-text-v2/.test(modelId)) return { api: 'titan', dimensions: [256, 512, 1024], sendsDimensions: true };
  if (/amazon\.titan-embed-(text-v1|g1-text-02)/.test(modelId)) return { api: 'titan', dimensions: [1536], sendsDimensions: false };
  if (/cohere\.embed-v4/.test(modelId)) return { api: 'cohere', dimensions: [256, 512, 1024, 1536], sendsDimensions: true };
  if (/cohere\.embed-(english|multilingual)-v3/.test(modelId)) return { api: 'cohere', dimensions: [1024], sendsDimensions: false };
  return undefined;
}

/**
 * Embeddings through InvokeModel: Titan Text Embeddings (one text per call, calls run a few at a
 * time) and Cohere Embed (batches of up to 96). Bedrock always answers floats; the endpoint
 * encodes base64 itself (Titan's `binary` type is 1-bit quantized, not what base64 means).
 * Token counts: Titan's `inputTextTokenCount`, else the response header; summed over the calls.
 */
export async function bedrockEmbeddings(call: EmbeddingCall, client: BedrockRuntimeClient): Promise<EmbeddingResult> {
  const modelId = call.route.model;
  const family = embeddingFamily(modelId);
  if (!family) {
    throw upstreamError(`The Bedrock model '${modelId}' is not an embedding model this gateway knows (Titan Text Embeddings, Cohere Embed).`, {
      fallback: true,
    });
  }
  const inputs = embeddingInputs(call.request);
  if (inputs.kind !== 'text') throw invalidRequest('Amazon Bedrock embeds text only: send `input` as a string or an array of strings, not token ids.', 'input');
  const dimensions = call.request.dimensions;
  if (dimensions !== undefined && !family.dimensions.includes(dimensions)) {
    throw invalidRequest(`The model '${call.request.model}' supports dimensions of ${family.dimensions.join(', ')} only.`, 'dimensions');
  }
  const inputType = call.request.input_type ?? COHERE_DEFAULT_INPUT_TYPE;
  if (family.api === 'cohere' && !COHERE_INPUT_TYPES.includes(inputType)) {
    throw invalidRequest(`Invalid value for 'input_type': expected one of ${COHERE_INPUT_TYPES.map((t) => `'${t}'`).join(', ')}.`, 'input_type');
  }

  const deadline = UpstreamDeadline.whole(call, 'Amazon Bedrock');
  const invoke = (body: object) => invokeJson(client, modelId, body, deadline.signal);
  try {
    if (family.api === 'titan') {
      const send = family.sendsDimensions && dimensions !== undefined ? { dimensions } : {};
      const answers = await mapConcurrently(inputs.texts, CONCURRENT_CALLS, (inputText) => invoke({ inputText, ...send }));
      return {
        vectors: answers.map(({ body }) => titanVector(body)),
        promptTokens: sumTokens(answers.map(({ body, headerTokens }) => numberOr((body as TitanAnswer).inputTextTokenCount, headerTokens))),
      };
    }
    const batches: string[][] = [];
    for (let i = 0; i < inputs.texts.length; i += COHERE_BATCH_SIZE) batches.push(inputs.texts.slice(i, i + COHERE_BATCH_SIZE));
    const send = family.sendsDimensions
      ? { embedding_types: ['float'], ...(dimensions !== undefined && { output_dimension: dimensions }) }
      : {};
    const answers = await mapConcurrently(batches, CONCURRENT_CALLS, (texts) => invoke({ texts, input_type: inputType, ...send }));
    return {
      vectors: answers.flatMap(({ body }, i) => cohereVectors(body, batches[i].length)),
      promptTokens: sumTokens(answers.map(({ headerTokens }) => headerTokens)),
    };
  } catch (err) {
    throw deadline.failure(bedrockError(err, targetOf(call.route)), true);
  } finally {
    deadline.dispose(true);
  }
}

interface TitanAnswer {
  embedding?: unknown;
  inputTextTokenCount?: unknown;
  embeddingsByType?: { float?: unknown };
}

interface CohereAnswer {
  embeddings?: unknown;
}

interface Invoked {
  body: unknown;
  headerTokens: number | undefined;
}

/** One InvokeModel call with a JSON body; the answer's JSON and the token count of its header. */
async function invokeJson(client: BedrockRuntimeClient, modelId: string, body: object, abortSignal: AbortSignal): Promise<Invoked> {
  const { InvokeModelCommand } = await bedrockSdk();
  const command = new InvokeModelCommand({ modelId, body: JSON.stringify(body), contentType: 'application/json', accept: 'application/json' });
  let headerTokens: number | undefined;
  // The SDK's output has no headers: read the token count off the raw response as it passes.
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const headers = (result.response as { headers?: Record<string, string | undefined> } | undefined)?.headers ?? {};
      const name = Object.keys(headers).find((h) => h.toLowerCase() === INPUT_TOKEN_HEADER);
      const value = name === undefined ? undefined : Number(headers[name]);
      if (value !== undefined && Number.isInteger(value) && value >= 0) headerTokens = value;
      return result;
    },
    { step: 'deserialize', name: 'itapiInputTokenCount' },
  );
  const response = await client.send(command, { abortSignal });
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(response.body));
  } catch (err) {
    throw upstreamError('Amazon Bedrock answered with something that is not JSON.', { fallback: true, cause: err });
  }
  return { body: parsed, headerTokens };
}

function titanVector(body: unknown): number[] {
  const answer = body as TitanAnswer | null;
  const vector = answer?.embeddingsByType?.float ?? answer?.embedding;
  if (!isVector(vector)) throw upstreamError('The Titan embeddings answer has no embedding.', { fallback: true });
  return vector;
}

/** Cohere answers `embeddings` as an array of vectors, or by type (`{"float": [...]}`) when types were asked. */
function cohereVectors(body: unknown, expected: number): number[][] {
  const embeddings = (body as CohereAnswer | null)?.embeddings;
  const vectors = Array.isArray(embeddings) ? embeddings : (embeddings as { float?: unknown } | undefined)?.float;
  if (!Array.isArray(vectors) || vectors.length !== expected || !vectors.every(isVector)) {
    throw upstreamError(`The Cohere embeddings answer does not hold ${expected} vectors.`, { fallback: true });
  }
  return vectors;
}

function isVector(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'number');
}

function numberOr(value: unknown, fallback: number | undefined): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : fallback;
}

/** The sum when every call reported its tokens; else none (the gateway's own count is used). */
function sumTokens(counts: Array<number | undefined>): number | undefined {
  let total = 0;
  for (const count of counts) {
    if (count === undefined) return undefined;
    total += count;
  }
  return total;
}

/** `fn` over the items with at most `limit` in flight, results in item order; the first failure rejects. */
async function mapConcurrently<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await fn(items[i]);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
