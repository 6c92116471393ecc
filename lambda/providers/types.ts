import type { RouteConfig } from '../catalog';
import type { EmbeddingRequest } from '../contract/embeddings';
import type { JsonSource } from '../contract/json-splice';
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
export interface ProviderCall<R = ChatCompletionRequest> {
  /** The validated OpenAI request; `model` is the gateway's id, `route.model` the upstream's. */
  request: R;
  route: RouteConfig;
  /** The upstream key from the provider-keys secret, when the route names one. */
  apiKey: string | undefined;
  /** The catalog's output ceiling, for providers that require `max_tokens`. */
  maxOutputTokens: number;
  /** Aborted when the client goes away or the gateway gives up. */
  signal: AbortSignal;
  timeouts: UpstreamTimeouts;
  requestId: string;
  /**
   * On a same-wire relay (a `/v1/messages` client on an Anthropic route): the client's own request,
   * sent as it came but for what the endpoint set (the route's model, the output limit the hold
   * paid for), with the client's protocol headers. Only `relayStream` / `relayAnswer` read it.
   */
  sameWire?: SameWireRequest;
}

/** A client's request on the wire the provider speaks, for a relay. */
export interface SameWireRequest {
  body: Record<string, unknown>;
  /** The client's body as it came (contract/json-splice.ts): its large fields `body` still holds unchanged are sent as those bytes. */
  source?: JsonSource;
  /** Anthropic's `anthropic-version` as the client sent it. @default the provider's own */
  version?: string;
  /** `anthropic-beta`, forwarded as is. */
  beta?: string;
  /** `?beta=true` (the SDKs' beta namespace, Claude Code). */
  betaQuery?: boolean;
}

/** One embeddings call: the validated request (`encoding_format` as the client asked) and the model's catalog facts. */
export interface EmbeddingCall extends ProviderCall<EmbeddingRequest> {
  /** The catalog's vector length for the model, when it names one. */
  modelDimensions?: number;
}

/**
 * One vector per input, in input order: numbers, or the base64 of little-endian float32 values
 * as an upstream sent them when asked for base64 (the endpoint converts to what the client asked).
 */
export type EmbeddingVector = number[] | string;

export interface EmbeddingResult {
  vectors: EmbeddingVector[];
  /** Input tokens as the provider reported them; absent when it reported none (the gateway's count is used). */
  promptTokens?: number;
}

// ---------------------------------------------------------------------------------------------
// The provider interface (issue 18): providers take a `Call` (prompt and settings whose output
// limit the hold paid for) and answer in `AnswerEvent`s.
// ---------------------------------------------------------------------------------------------

/** One upstream call in the canonical model: what `ProviderCall` carries, with a `Call` as the request. */
export type AnswerCall = ProviderCall<import('../core/call').Call>;

/**
 * One event of a same-wire relay: the upstream's SSE event as it sent it (`event` name, if any, and
 * the `data` text unparsed), and what it means in the canonical model, for the meter. The endpoint
 * of the same wire writes `event`/`data` to its client untouched.
 */
export interface RelayedEvent {
  event?: string;
  data: string;
  answer: ReadonlyArray<import('../core/answer').AnswerEvent>;
}

/**
 * A same-wire relay's events. A relay that decodes lazily, to keep the fast path free of a parse
 * per event (OpenAI chat), gives in `answer` only what the meter needs at once (usage, errors
 * thrown) and the text it delivered through `deliveredText`, read back only when the tokenizer
 * must count it; a relay without `deliveredText` carries every event's whole meaning.
 */
export interface RelayStream extends AsyncIterable<RelayedEvent> {
  deliveredText?(): string;
}

/**
 * One upstream protocol, in the canonical model. Every method settles only once the upstream has
 * accepted the call (status and headers in, and for streams the first event read): a failure before
 * then is thrown as a GatewayError, with `fallback: true` when the next route may be tried. A
 * stream's iterator throws a GatewayError when the upstream fails after the stream began. Usage
 * comes as `usage` events with every class the provider reported (a later one replaces an earlier).
 */
export interface AnswerProvider {
  /** A whole answer (`stream: false`). */
  answer(call: AnswerCall): Promise<import('../core/answer').Answer>;
  /**
   * The provider answers Chat's `n > 1` with that many choices, in `answer` (`otherChoices`),
   * `answerStream` (events with `choice`) and `relayStream`; without it, `n > 1` is a 400.
   */
  readonly servesSeveralChoices?: boolean;
  /** A streamed answer, event by event. */
  answerStream(call: AnswerCall): Promise<AsyncIterable<import('../core/answer').AnswerEvent>>;
  /**
   * The wire this provider speaks, when an endpoint of the same wire may relay its stream's events
   * untouched (`openai-chat` for OpenAI-compatible upstreams, `anthropic-messages` for Anthropic).
   */
  readonly relayWire?: import('../core/prompt').WireName;
  /** The stream's events as sent, each with its canonical meaning; only with `relayWire`. */
  relayStream?(call: AnswerCall): Promise<RelayStream>;
  /** A whole answer as the upstream sent it (its JSON, parsed) and its canonical meaning; only with `relayWire`. */
  relayAnswer?(call: AnswerCall): Promise<{ body: Record<string, unknown>; answer: import('../core/answer').Answer }>;
  /** `POST /v1/embeddings` on this upstream; absent when the provider has no embeddings API. */
  embed?(call: EmbeddingCall): Promise<EmbeddingResult>;
  /**
   * The thinking this call asks of a model that bills it in full but streams a summary (Claude),
   * for the meter's upward rule when a stream is cut before the provider's count came
   * (`money/thinking.ts`); absent or undefined when the call does not think so.
   */
  thinkingBilling?(call: AnswerCall): import('../money/thinking').ThinkingBilling | undefined;
}
