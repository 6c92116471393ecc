import type { PriceNanoUsd, TokenPricesNanoUsd } from '../catalog';

/**
 * A request's usage as settlement bills it, each class of tokens apart. `promptTokens` counts
 * every input token (cache reads and writes included, as OpenAI's `prompt_tokens` does);
 * `completionTokens` every output token, reasoning included (`reasoningTokens` is a part of it,
 * recorded, never charged twice).
 */
export interface BilledUsage {
  promptTokens: number;
  completionTokens: number;
  /** Cache reads. */
  cachedTokens: number;
  /** 5-minute cache writes. */
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  reasoningTokens: number;
  /** Server-tool calls by the catalog's tool name. */
  serverToolCalls: Record<string, number>;
  /** The tier the upstream answered with, when it named one. */
  serviceTier?: string;
  /** True when some of the counts came from the tokenizer because the provider reported none. */
  estimated: boolean;
}

export const NO_USAGE: BilledUsage = {
  promptTokens: 0,
  completionTokens: 0,
  cachedTokens: 0,
  cacheWriteTokens: 0,
  cacheWrite1hTokens: 0,
  reasoningTokens: 0,
  serverToolCalls: {},
  estimated: false,
};

/**
 * The token prices a request is billed at: those of the tier the answer names, else of the tier
 * requested; a tier the model does not price (`default`, `standard`, `auto`) bills the base
 * prices, and a base-tier prompt above the model's long-context threshold its long-context prices.
 */
export function tokenPricesFor(price: PriceNanoUsd, promptTokens: number, answeredTier?: string, requestedTier?: string): TokenPricesNanoUsd {
  const tier = answeredTier ?? requestedTier;
  const tiered = tier !== undefined && Object.hasOwn(price.serviceTiers, tier) ? price.serviceTiers[tier] : undefined;
  if (tiered) return tiered;
  if (price.longContext && promptTokens > price.longContext.aboveInputTokens) return price.longContext;
  return price;
}

/**
 * The charge in micro-USD, rounded up: Σ tokens of each class × its price + server-tool calls ×
 * their price. Uncached input is the prompt less its cache reads and writes. A tool call the
 * model does not price costs nothing here: such a request is refused before the upstream is called.
 */
export function costOf(usage: BilledUsage, price: PriceNanoUsd, requestedTier?: string): number {
  const p = tokenPricesFor(price, usage.promptTokens, usage.serviceTier, requestedTier);
  const cached = Math.min(usage.cachedTokens, usage.promptTokens);
  const writes1h = Math.min(usage.cacheWrite1hTokens, usage.promptTokens - cached);
  const writes5m = Math.min(usage.cacheWriteTokens, usage.promptTokens - cached - writes1h);
  const uncached = usage.promptTokens - cached - writes1h - writes5m;
  let nano =
    uncached * p.inputPerToken +
    cached * p.cachedInputPerToken +
    writes5m * p.cacheWritePerToken +
    writes1h * p.cacheWrite1hPerToken +
    usage.completionTokens * p.outputPerToken;
  for (const [tool, calls] of Object.entries(usage.serverToolCalls)) {
    nano += calls * (price.serverToolPerCall[tool as keyof PriceNanoUsd['serverToolPerCall']] ?? 0);
  }
  return Math.ceil(nano / 1000);
}

/** Prices of nothing, for a settlement that only gives a hold back. */
export const FREE_PRICE: PriceNanoUsd = {
  inputPerToken: 0,
  outputPerToken: 0,
  cachedInputPerToken: 0,
  cacheWritePerToken: 0,
  cacheWrite1hPerToken: 0,
  serverToolPerCall: {},
  serviceTiers: {},
};
