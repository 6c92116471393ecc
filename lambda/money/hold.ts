import type { ModelEntry } from '../catalog';
import type { AdmissionRequest } from './types';

/** The hold for one request, in micro-USD, and the output limit it pays for. */
export interface Hold {
  promptTokens: number;
  /** The output limit held for, per choice: what the upstream is asked for. */
  outputTokens: number;
  n: number;
  holdMicroUsd: number;
  /** The prompt's share of the hold: what an abandoned hold is charged. */
  promptMicroUsd: number;
  /** Tokens counted against the minute's token limit: the prompt plus the output limit × n. */
  rateTokens: number;
  /** True when the client named no output limit, so it may be lowered to what the balance pays. */
  lowerable: boolean;
}

type HoldInput = Pick<AdmissionRequest, 'promptTokens' | 'outputLimit' | 'n'>;

/**
 * Worst-case cost (ARCHITECTURE §3): prompt × input price + output limit × output price × n,
 * where the output limit is the client's, clamped to the model's maximum, else the model's
 * maximum, or `outputTokens` when admission lowered it.
 */
export function computeHold(model: Pick<ModelEntry, 'maxOutputTokens' | 'price'>, input: HoldInput, outputTokens?: number): Hold {
  const n = input.n ?? 1;
  const clientLimit = input.outputLimit === undefined ? undefined : Math.min(input.outputLimit, model.maxOutputTokens);
  const out = outputTokens ?? clientLimit ?? model.maxOutputTokens;
  const promptNano = input.promptTokens * model.price.inputPerToken;
  return {
    promptTokens: input.promptTokens,
    outputTokens: out,
    n,
    holdMicroUsd: Math.ceil((promptNano + out * n * model.price.outputPerToken) / 1000),
    promptMicroUsd: Math.ceil(promptNano / 1000),
    rateTokens: input.promptTokens + out * n,
    lowerable: input.outputLimit === undefined,
  };
}

/** The most output tokens a balance pays for, after the prompt; 0 when it cannot pay for one. */
export function affordableOutputTokens(model: Pick<ModelEntry, 'maxOutputTokens' | 'price'>, input: HoldInput, balanceMicroUsd: number): number {
  const perToken = model.price.outputPerToken * (input.n ?? 1);
  const left = balanceMicroUsd * 1000 - input.promptTokens * model.price.inputPerToken;
  if (left <= 0) return 0;
  if (perToken === 0) return model.maxOutputTokens;
  return Math.min(model.maxOutputTokens, Math.floor(left / perToken));
}

/** The most output tokens per choice that fit a token limit alone, after the prompt (0: none). */
export function outputTokensWithin(tokenLimit: number, input: HoldInput): number {
  return Math.max(0, Math.floor((tokenLimit - input.promptTokens) / (input.n ?? 1)));
}

export const usd = (micro: number) => `$${(micro / 1e6).toFixed(6)}`;
