import type { ErrorBody } from './errors';

const encoder = new TextEncoder();

/** One SSE event carrying JSON, as OpenAI frames them: `data: {...}\n\n`. */
export function sseData(value: unknown): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
}

/** One SSE event whose JSON is already text (a chunk relayed as the upstream wrote it). */
export function sseText(json: string): Uint8Array {
  return encoder.encode(`data: ${json}\n\n`);
}

export const SSE_DONE: Uint8Array = encoder.encode('data: [DONE]\n\n');

/** The final event of a stream that failed after it began, followed by `[DONE]`. */
export function sseError(body: ErrorBody): Uint8Array {
  return sseData(body);
}
