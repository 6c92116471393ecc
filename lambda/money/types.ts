import type { ModelEntry } from '../catalog';
import type { BillingAsk } from './billing-ask';
import type { CompletionUsage } from '../contract/openai';
import type { KeyRecord } from '../store/keys';
import type { LedgerStatus } from '../store/usage';
import type { SpeculationVerdict } from './speculation';

/** What admission needs to know of a request, whatever its endpoint (chat, responses, messages, embeddings). */
export interface AdmissionRequest {
  requestId: string;
  key: KeyRecord;
  model: ModelEntry;
  /** When the request arrived, ms since the epoch. */
  startedAtMs: number;
  /** The prompt as the upstream will count it (text, tools, images, schema), estimated. */
  promptTokens: number;
  /** The client's own output limit (`max_tokens`, `max_completion_tokens`, `max_output_tokens`); 0 for embeddings. */
  outputLimit?: number;
  /** Choices asked for. @default 1 */
  n?: number;
  stream: boolean;
  /** What the request may be billed beyond its tokens at base prices (tier, cache writes, server tools, inputs of unknown size). */
  billing?: BillingAsk;
  /**
   * Speculating (chat/overlap.ts): the admission is counted in flight at once, but its write's work
   * starts a macrotask later, once the upstream call made just before it is on the wire (issue 22).
   */
  afterUpstreamCall?: boolean;
  /**
   * A key given ahead of its read (auth/index.ts `authenticateAhead`): called once the admission is
   * counted in flight (and, speculating, once the upstream call is on the wire), before anything
   * is written; the key it gives is the one admitted for (same account and terms, or it throws).
   */
  confirmKey?: () => Promise<KeyRecord>;
  /**
   * Speculating, the prompt's estimate counted late (money/tokens.ts `PromptEstimate`):
   * `promptTokens` is then its upper bound, what the admission is counted in flight with; the
   * estimate itself is counted once the upstream call is on the wire, before anything is written,
   * and admitted for.
   */
  countPrompt?: () => number;
}

/** How one admitted request ended, for settlement. */
export interface Outcome {
  /** For the ledger: completed, failed (nothing billable), interrupted, aborted. */
  status: Exclude<LedgerStatus, 'abandoned' | 'late_settlement'>;
  /** HTTP status the client got (200 for a stream that ended with an error event). */
  httpStatus: number;
  /** Usage as the provider reported it; absent, or partial, when the answer was cut short. */
  usage?: CompletionUsage;
  /** What was delivered so far (text and tool arguments), to count tokens the provider did not report. */
  completionText: string;
  /**
   * For an answer cut short: output tokens the provider bills at least, where the text delivered
   * understates them (Claude's summarized thinking, billed in full: estimated upward).
   */
  outputTokensAtLeast?: number;
  /** `provider:model` of the route that served the request. */
  route?: string;
  errorCode?: string;
  /** The `service_tier` the client asked for (priced when the answer names none). */
  requestedServiceTier?: string;
  /** Server-tool calls the provider bills without reporting them (BillingAsk.impliedServerToolCalls), charged once it answered. */
  impliedServerToolCalls?: Record<string, number>;
  latencyMs: number;
  timeToFirstTokenMs?: number;
  stream: boolean;
}

export interface Admitted {
  /**
   * The output limit the hold pays for, to be sent upstream as the request's limit: the client's,
   * clamped to the model's maximum, else the model's maximum, lowered to what the balance pays
   * and fitted to what the minute has left (never below the floor of 1,024 tokens).
   */
  outputTokens: number;
  /** The six `x-ratelimit-*` headers as of this admission. */
  headers: Record<string, string>;
  /** When the request must have ended, ms since the epoch (ITAPI_MAX_REQUEST_S after it started). */
  deadlineMs: number;
  /** Exactly-once settlement; safe to call again, and safe to race with the sweeper. */
  settle(outcome: Outcome): Promise<void>;
  /**
   * Records on the hold item the output delivered so far (a streaming request calls it at least
   * every 5 s), so that a sweep after a crash charges it. Absent where no hold item is kept.
   */
  checkpoint?(outputTokens: number): Promise<void>;
}

/**
 * The money and limits step between validation and the upstream call. Throws a GatewayError:
 * 429 (rate limit), 402 (cannot pay), 403 (model not in the tier), 503 (store unavailable).
 */
export interface Admission {
  admit(req: AdmissionRequest): Promise<Admitted>;
  /**
   * The `x-ratelimit-*` headers for a key's account, for answers that end before admission
   * (`GET /v1/models`, a 400): as last seen, or read once on a cold instance.
   */
  headersFor?(key: KeyRecord): Promise<Record<string, string> | undefined>;
  /**
   * Whether the upstream call may start while this request's admission write is in flight, and
   * with which output limit (money/speculation.ts): from this instance's own recent view, no I/O.
   */
  foresee?(req: AdmissionRequest): SpeculationVerdict;
  /** May this key use this model (key list and tier list)? Cheap, from cached state. */
  allowsModel?(key: KeyRecord, modelId: string): boolean;
}
