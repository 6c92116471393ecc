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
 * it (text, tool input), within the output limit. Used by the one metered stream (`chat/pipeline.ts`
 * `MeteredAnswer`, from the provider's `thinkingBilling(call)`) on every endpoint.
 */
export function thinkingOutputFloor(billing: ThinkingBilling, answerText: string): number {
  return Math.min(billing.outputLimit, (billing.budgetTokens ?? billing.outputLimit) + countTokens(answerText));
}
