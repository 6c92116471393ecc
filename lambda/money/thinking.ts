import { countTokens } from './tokens';

/** What a stream with extended thinking needs to bill thinking Claude summarized, when the stream is cut short. */
export interface ThinkingBilling {
  /** The thinking budget sent upstream; absent when the request set none (adaptive thinking). */
  budgetTokens?: number;
  /** The output limit sent upstream (`max_tokens`), thinking included. */
  outputLimit: number;
  /** The model streams a summary of its thinking, while the provider bills the full thinking (Claude 4 and later). */
  summarized: boolean;
}

/** Claude 3.7 Sonnet streams its full thinking; later Claude models stream a summary and bill the thinking in full. */
export function summarizesThinking(upstreamModel: string): boolean {
  return !/3[-.]7/.test(upstreamModel);
}

/**
 * The one rule for summarized thinking cut short before the provider's output count came: the
 * whole thinking budget sent (else the output limit) plus the tokens of the answer delivered after
 * it (text, tool input), within the output limit. Used by `/v1/messages` (answerMeter)
 * and the translated routes (chunkMeter, fed by THINKING on the chunks).
 */
export function thinkingOutputFloor(billing: ThinkingBilling, answerText: string): number {
  return Math.min(billing.outputLimit, (billing.budgetTokens ?? billing.outputLimit) + countTokens(answerText));
}

/**
 * A side channel on OpenAI chunks from a provider's stream mapper to the meter: the thinking the
 * provider streamed, which the client's wire does not carry. A chunk carrying it has no choices
 * and no usage, so no client wire sends it (Chat drops a choice-less chunk without usage;
 * Responses and Messages translate choices only). A symbol: never serialised.
 */
export const THINKING: unique symbol = Symbol('itapi.thinking');

export interface ThinkingSignal {
  /** Thinking text delivered by the provider (metered like text); '' when a thinking block only began. */
  text: string;
  /** Set when the thinking is summarized: an abort before the usage came is charged by thinkingOutputFloor. */
  billing?: ThinkingBilling;
}
