import { embeddingInputs, inputCount } from '../../contract/embeddings';
import { upstreamError } from '../../contract/errors';
import { fetchUpstream, readJson } from '../http';
import type { EmbeddingCall, EmbeddingResult, EmbeddingVector } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';

interface UpstreamEmbeddings {
  data?: Array<{ index?: unknown; embedding?: unknown }>;
  usage?: { prompt_tokens?: unknown };
}

/**
 * `POST {base}/embeddings`: the body passes through with the upstream's model id, and
 * `encoding_format` as the client asked, so a base64 answer travels as base64 (a quarter of the
 * bytes of JSON numbers) and is never decoded; the endpoint converts an upstream that ignored it.
 */
export async function openAiCompatibleEmbeddings(call: EmbeddingCall, baseUrl: string): Promise<EmbeddingResult> {
  const deadline = UpstreamDeadline.whole(call, 'The upstream');
  let whole = false;
  try {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (call.apiKey) headers.authorization = `Bearer ${call.apiKey}`;
    const body = JSON.stringify({ ...call.request, model: call.route.model });
    const response = await fetchUpstream(`${baseUrl}/embeddings`, { headers, body }, call, deadline);
    const answer = (await readJson(response).catch((err) => Promise.reject(deadline.failure(err, true)))) as UpstreamEmbeddings;
    whole = true;
    return { vectors: vectorsOf(answer, inputCount(embeddingInputs(call.request))), promptTokens: reportedTokens(answer) };
  } finally {
    // A body read to its end leaves the socket to the keep-alive pool; anything else cuts it.
    deadline.dispose(!whole);
  }
}

/** The answer's vectors in input order (by `index`), one per input, or an upstream error. */
function vectorsOf(answer: UpstreamEmbeddings, expected: number): EmbeddingVector[] {
  if (!Array.isArray(answer.data)) throw upstreamError('The upstream embeddings answer has no data.', { fallback: true });
  if (answer.data.length !== expected) {
    throw upstreamError(`The upstream answered ${answer.data.length} embeddings for ${expected} inputs.`, { fallback: true });
  }
  const vectors = new Array<EmbeddingVector | undefined>(expected);
  answer.data.forEach((item, position) => {
    const index = typeof item?.index === 'number' ? item.index : position;
    const vector = item?.embedding;
    const valid = typeof vector === 'string' || (Array.isArray(vector) && vector.every((v) => typeof v === 'number'));
    if (!valid || !Number.isInteger(index) || index < 0 || index >= expected || vectors[index] !== undefined) {
      throw upstreamError('The upstream embeddings answer is malformed.', { fallback: true });
    }
    vectors[index] = vector as EmbeddingVector;
  });
  return vectors as EmbeddingVector[];
}

function reportedTokens(answer: UpstreamEmbeddings): number | undefined {
  const tokens = answer.usage?.prompt_tokens;
  return typeof tokens === 'number' && Number.isInteger(tokens) && tokens >= 0 ? tokens : undefined;
}
