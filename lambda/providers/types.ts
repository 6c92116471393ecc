import type { RouteConfig } from '../catalog';
import type { ChatCompletion, ChatCompletionChunk } from '../contract/openai';
import type { ChatCompletionRequest } from '../contract/request';

export interface UpstreamTimeouts {
  /** Until the upstream's response headers arrive. */
  firstByteMs: number;
  /** Longest silence between two stream chunks. */
  idleMs: number;
  /** The whole call, JSON answers only. */
  totalMs: number;
}

export const DEFAULT_TIMEOUTS: UpstreamTimeouts = { firstByteMs: 60_000, idleMs: 60_000, totalMs: 600_000 };

/** What one upstream call needs besides the request. */
export interface ProviderCall {
  /** The validated OpenAI request; `model` is the gateway's id, `route.model` the upstream's. */
  request: ChatCompletionRequest;
  route: RouteConfig;
  /** The upstream key from the provider-keys secret, when the route names one. */
  apiKey: string | undefined;
  /** The catalog's output ceiling, for providers that require `max_tokens`. */
  maxOutputTokens: number;
  /** Aborted when the client goes away or the gateway gives up. */
  signal: AbortSignal;
  timeouts: UpstreamTimeouts;
  requestId: string;
}

/**
 * One upstream protocol. Both methods settle only once the upstream has accepted the call
 * (status and headers in): a failure before then is thrown as a GatewayError, with
 * `fallback: true` when the next route may be tried (connect error, timeout, 429, 5xx).
 * Chunks and completions come back in OpenAI's shapes with OpenAI's `finish_reason` words,
 * and carry `usage` as the provider reported it (streams: in a final chunk with no choices).
 */
export interface Provider {
  complete(call: ProviderCall): Promise<ChatCompletion>;
  /** The iterator throws a GatewayError when the upstream fails after the stream began. */
  stream(call: ProviderCall): Promise<AsyncIterable<ChatCompletionChunk>>;
}
