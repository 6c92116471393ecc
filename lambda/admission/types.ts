import type { ModelEntry } from '../catalog';
import type { CompletionUsage } from '../contract/openai';
import type { ChatCompletionRequest } from '../contract/request';
import type { KeyRecord } from '../store/keys';

export interface AdmissionRequest {
  requestId: string;
  key: KeyRecord;
  model: ModelEntry;
  request: ChatCompletionRequest;
  /** When the request arrived, ms since the epoch. */
  startedAtMs: number;
}

/** How one admitted request ended, for settlement. */
export interface Outcome {
  /** HTTP status the client got (200 for a stream that ended with an error event: see `failed`). */
  status: number;
  /** True when the upstream produced nothing billable: the whole hold goes back. */
  failed: boolean;
  /** Usage as the provider reported it; absent when the answer was cut short. */
  usage?: CompletionUsage;
  /** What the upstream produced so far (text and tool arguments), to count tokens when usage is absent. */
  completionText: string;
  /** `provider:model` of the route that served the request. */
  route?: string;
  errorCode?: string;
  latencyMs: number;
  timeToFirstTokenMs?: number;
  stream: boolean;
  /** The client went away before the end. */
  clientAborted?: boolean;
}

export interface Admitted {
  /** Set when the balance cannot pay for the model's maximum: the upstream's output limit. */
  maxOutputTokens?: number;
  /** The six `x-ratelimit-*` headers as of this admission. */
  headers: Record<string, string>;
  /** Exactly-once settlement; safe to call again after a crash or retry. */
  settle(outcome: Outcome): Promise<void>;
}

/**
 * The money and limits step between validation and the upstream call. Throws a GatewayError:
 * 429 (rate limit), 402 (cannot pay), 403 (model not in the tier), 503 (store unavailable).
 */
export interface Admission {
  admit(req: AdmissionRequest): Promise<Admitted>;
  /** Last known `x-ratelimit-*` headers for a key's account, for answers that end before admission. */
  headersFor?(key: KeyRecord): Record<string, string> | undefined;
  /** May this key use this model (key list and tier list)? Cheap, from cached state. */
  allowsModel?(key: KeyRecord, modelId: string): boolean;
}
