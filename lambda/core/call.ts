import type { Prompt, Tool, ToolChoice, WireName } from './prompt';

export type ReasoningEffort = 'none' | 'minimal' | 'low' | 'medium' | 'high' | 'xhigh' | 'max';

/** What the client asked of the model's thinking. */
export interface ReasoningRequest {
  /** `enabled` with a budget (Anthropic), `adaptive` (Anthropic decides), `disabled`; an effort alone is `enabled`. */
  mode: 'enabled' | 'disabled' | 'adaptive';
  /** Anthropic's `budget_tokens`. */
  budgetTokens?: number;
  /** Chat's `reasoning_effort`, Responses' `reasoning.effort`, Anthropic's `output_config.effort`. */
  effort?: ReasoningEffort;
  /** Responses' `reasoning.summary`. */
  summary?: string;
}

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown>; description?: string; strict?: boolean };

/** The settings every client wire names alike (`model`, `stream`, `temperature`, `top_p`), as decoded. */
export function commonOptions(request: {
  model: string;
  stream?: boolean | null;
  temperature?: number | null;
  top_p?: number | null;
}): Pick<RequestOptions, 'model' | 'stream' | 'temperature' | 'topP'> {
  return {
    model: request.model,
    stream: request.stream === true,
    ...(request.temperature != null && { temperature: request.temperature }),
    ...(request.top_p != null && { topP: request.top_p }),
  };
}

/** The client's settings, as decoded: its output limit is a wish, not yet what the hold pays for. */
export interface RequestOptions {
  model: string;
  stream: boolean;
  /** The client's `max_tokens` / `max_completion_tokens` / `max_output_tokens`, if it gave one. */
  outputLimit?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  stop?: string[];
  tools: Tool[];
  toolChoice?: ToolChoice;
  /** false when the client forbade parallel calls (`parallel_tool_calls: false`, `disable_parallel_tool_use`). */
  parallelToolCalls?: boolean;
  reasoning?: ReasoningRequest;
  responseFormat?: ResponseFormat;
  /** How much the model should write: Chat's `verbosity`, Responses' `text.verbosity` (OpenAI's GPT-5 family). */
  verbosity?: 'low' | 'medium' | 'high';
  /** Chat's `user`, Anthropic's `metadata.user_id`. */
  user?: string;
  serviceTier?: string;
  /** Chat's `stream_options.include_usage`. */
  includeUsage?: boolean;
  /**
   * Per-token log probabilities asked (Responses' `include: ["message.output_text.logprobs"]`,
   * `top_logprobs`): a Chat upstream gets `logprobs: true` and `top_logprobs`; a route that has
   * none refuses. Chat's own `logprobs` stay its wire's extensions.
   */
  logprobs?: { topLogprobs?: number };
  /**
   * Fields of the wire the request came in that the canonical model does not name, kept as sent:
   * only a codec of the same wire writes them back (a same-wire provider gets them; others never).
   */
  extensions?: { wire: WireName; fields: Record<string, unknown> };
}

/** A request as a codec decodes it. */
export interface DecodedRequest {
  prompt: Prompt;
  options: RequestOptions;
  /** The client's body on its wire, as `readJsonBody` read it (never changed since). */
  source?: WireSource;
}

/**
 * The client's request body and the wire it speaks: an encoder of the same wire copies from its
 * bytes each large field it would send unchanged (contract/json-splice.ts `spliceJson`); any
 * other encoder ignores it.
 */
export interface WireSource {
  wire: WireName;
  /** The body's bytes as they came. */
  bytes: Buffer;
  /** The bytes as UTF-8 text. */
  text: string;
  /** What `JSON.parse` made of them, never changed since. */
  value: Record<string, unknown>;
}

declare const held: unique symbol;

/**
 * An output limit a money hold has paid for. Only `heldOutputLimit` makes one, from what admission
 * returned (`Admitted.outputTokens`), so a provider request cannot be built with an unpaid limit.
 */
export type HeldOutputLimit = number & { readonly [held]: true };

export function heldOutputLimit(admittedOutputTokens: number): HeldOutputLimit {
  if (!Number.isInteger(admittedOutputTokens) || admittedOutputTokens < 1) {
    throw new RangeError(`An output limit must be a positive integer, not ${admittedOutputTokens}.`);
  }
  return admittedOutputTokens as HeldOutputLimit;
}

/** The settings a provider is called with: the client's, with the output limit the hold pays for. */
export interface CallSettings extends Omit<RequestOptions, 'outputLimit'> {
  maxOutputTokens: HeldOutputLimit;
}

/** What a provider encoder takes: the prompt and settings whose output limit is paid for. */
export interface Call {
  prompt: Prompt;
  settings: CallSettings;
  source?: WireSource;
}

/** The call for a decoded request once admission has held money for `limit` output tokens. */
export function callFor(decoded: DecodedRequest, limit: HeldOutputLimit): Call {
  const { outputLimit: _wish, ...rest } = decoded.options;
  const call: Call = { prompt: decoded.prompt, settings: { ...rest, maxOutputTokens: limit } };
  if (decoded.source) call.source = decoded.source;
  return call;
}
