import type { ModelEntry, ServerTool } from '../catalog';
import { heldServerToolCalls, SERVER_TOOL_RESULT_TOKENS } from './billing-ask';
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

type HoldInput = Pick<AdmissionRequest, 'promptTokens' | 'outputLimit' | 'n' | 'billing'>;
type HoldModel = Pick<ModelEntry, 'maxOutputTokens' | 'price' | 'contextWindow'>;

/** The prompt's tokens and per-token prices the hold pays for: the highest the request can incur. */
interface PromptHold {
  /** Tokens the money hold takes for the prompt: the estimate, server-tool results, or the context window for inputs of unknown size. */
  moneyTokens: number;
  /** Tokens counted against the minute's limit for the prompt: the estimate (and server-tool results). */
  rateTokens: number;
  /** Nano-USD per prompt token: the tier's (or long-context) input price, or a cache write's, whichever is highest. */
  inputPerToken: number;
  outputPerToken: number;
  /** Nano-USD for the server-tool calls held (max uses × per-call price). */
  toolsNano: number;
}

function promptHold(model: HoldModel, input: HoldInput): PromptHold {
  const ask = input.billing;
  const calls = heldServerToolCalls(ask);
  const rateTokens = input.promptTokens + calls * SERVER_TOOL_RESULT_TOKENS;
  const moneyTokens = ask?.unknownSizeInputs ? Math.max(model.contextWindow, rateTokens) : rateTokens;
  const tiered = ask?.serviceTier !== undefined && Object.hasOwn(model.price.serviceTiers, ask.serviceTier) ? model.price.serviceTiers[ask.serviceTier] : undefined;
  const long = !tiered && model.price.longContext && moneyTokens > model.price.longContext.aboveInputTokens ? model.price.longContext : undefined;
  const p = tiered ?? long ?? model.price;
  let toolsNano = 0;
  for (const [tool, n] of Object.entries(ask?.serverToolCalls ?? {})) toolsNano += (n ?? 0) * (model.price.serverToolPerCall[tool as ServerTool] ?? 0);
  return {
    moneyTokens,
    rateTokens,
    inputPerToken: Math.max(p.inputPerToken, ask?.cacheWrite ? p.cacheWritePerToken : 0, ask?.cacheWrite1h ? p.cacheWrite1hPerToken : 0),
    outputPerToken: p.outputPerToken,
    toolsNano,
  };
}

/**
 * Worst-case cost (ARCHITECTURE §3): prompt × its highest price (the requested tier's, a cache
 * write's, long-context) + server-tool calls × their price + output limit × output price × n,
 * where the output limit is the client's, clamped to the model's maximum, else the model's
 * maximum, or `outputTokens` when admission lowered it. An input of unknown size is held at the
 * model's context window for money only; the minute's count takes the estimate.
 */
export function computeHold(model: HoldModel, input: HoldInput, outputTokens?: number): Hold {
  const n = input.n ?? 1;
  const clientLimit = input.outputLimit === undefined ? undefined : Math.min(input.outputLimit, model.maxOutputTokens);
  const out = outputTokens ?? clientLimit ?? model.maxOutputTokens;
  const prompt = promptHold(model, input);
  const promptNano = prompt.moneyTokens * prompt.inputPerToken + prompt.toolsNano;
  return {
    promptTokens: prompt.rateTokens,
    outputTokens: out,
    n,
    holdMicroUsd: Math.ceil((promptNano + out * n * prompt.outputPerToken) / 1000),
    // What an abandoned hold is charged: the estimated prompt at its held price.
    promptMicroUsd: Math.ceil((prompt.rateTokens * prompt.inputPerToken) / 1000),
    rateTokens: prompt.rateTokens + out * n,
    lowerable: input.outputLimit === undefined,
  };
}

/** The most output tokens a balance pays for, after the prompt; 0 when it cannot pay for one. */
export function affordableOutputTokens(model: HoldModel, input: HoldInput, balanceMicroUsd: number): number {
  const prompt = promptHold(model, input);
  const perToken = prompt.outputPerToken * (input.n ?? 1);
  const left = balanceMicroUsd * 1000 - prompt.moneyTokens * prompt.inputPerToken - prompt.toolsNano;
  if (left <= 0) return 0;
  if (perToken === 0) return model.maxOutputTokens;
  return Math.min(model.maxOutputTokens, Math.floor(left / perToken));
}

/** The most output tokens per choice that fit a token limit alone, after the prompt (0: none). */
export function outputTokensWithin(tokenLimit: number, input: HoldInput): number {
  return Math.max(0, Math.floor((tokenLimit - input.promptTokens) / (input.n ?? 1)));
}

export const usd = (micro: number) => `$${(micro / 1e6).toFixed(6)}`;
