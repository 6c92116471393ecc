import type { ModelEntry, ServerTool } from '../catalog';
import { invalidRequest, type GatewayError } from '../contract/errors';

/**
 * What a request may be billed for beyond its tokens at the base prices, read from the request by
 * its endpoint: the hold is taken at the highest price it can incur, and what the model does not
 * price is refused before the upstream is called.
 */
export interface BillingAsk {
  /** The `service_tier` asked for. */
  serviceTier?: string;
  /** Some prompt block asks to be cached (Anthropic's `cache_control`): the prompt may be billed as 5-minute writes. */
  cacheWrite?: boolean;
  /** Some `cache_control` has `ttl: "1h"`: the prompt may be billed as 1-hour writes. */
  cacheWrite1h?: boolean;
  /** The most calls of each server tool the upstream may make (`max_uses`, else DEFAULT_SERVER_TOOL_USES). */
  serverToolCalls?: Partial<Record<ServerTool, number>>;
  /**
   * Calls a provider bills without counting them in its usage: OpenAI's search models on Chat
   * Completions search once per request asked with `web_search_options`.
   */
  impliedServerToolCalls?: Partial<Record<ServerTool, number>>;
  /** Inputs whose size the gateway cannot know (a document or file by URL or id): the money hold takes the whole context window. */
  unknownSizeInputs?: number;
}

/** The calls of a server tool held for when the client named no `max_uses`; the same limit is sent to Anthropic. */
export const DEFAULT_SERVER_TOOL_USES = 5;

/** Tokens held per server-tool call for its results (a web search's pages come back as input tokens). */
export const SERVER_TOOL_RESULT_TOKENS = 10_000;

/**
 * The minute's token count for an input of unknown size (a document by URL or file id): about
 * two PDF pages at Anthropic's 1,500-3,000 tokens a page. Money holds the context window; the
 * count is corrected to the provider's at settlement.
 */
export const UNKNOWN_INPUT_TOKENS = 3_000;

/** Tiers asked for that never bill above the base prices (OpenAI's `auto` and `default`, Anthropic's `auto` and `standard_only`). */
const BASE_TIERS = new Set(['auto', 'default', 'standard', 'standard_only']);

/** Anthropic's server-tool types (`web_search_20250305`, `web_fetch_20250910`, `code_execution_20250825`) by the catalog's name. */
export function anthropicServerTool(type: string | undefined): ServerTool | undefined {
  if (!type) return undefined;
  if (/^web_search_\d/.test(type)) return 'web_search';
  if (/^web_fetch_\d/.test(type)) return 'web_fetch';
  if (/^code_execution_\d/.test(type)) return 'code_execution';
  return undefined;
}

/** Does the model price this tier (or is it one that bills the base prices)? */
export function pricesTier(model: Pick<ModelEntry, 'price'>, tier: string): boolean {
  return BASE_TIERS.has(tier) || Object.hasOwn(model.price.serviceTiers, tier);
}

export function pricesServerTool(model: Pick<ModelEntry, 'price'>, tool: ServerTool): boolean {
  return model.price.serverToolPerCall[tool] !== undefined;
}

/** The 400 for a service tier the model does not price. */
export function unpricedTierError(model: Pick<ModelEntry, 'id'>, tier: string, param: string | null = 'service_tier'): GatewayError {
  return invalidRequest(
    `The service tier '${tier}' is not priced for the model '${model.id}' in this gateway's catalog, so it cannot be billed: omit 'service_tier' or use 'auto' or 'default'.`,
    param,
    'unsupported_value',
  );
}

/** The 400 for a server tool (or MCP server) the model does not price. */
export function unpricedToolError(model: Pick<ModelEntry, 'id'>, what: string, param: string | null): GatewayError {
  return invalidRequest(
    `${what} is billed by the provider per use, and the model '${model.id}' prices no such use in this gateway's catalog, so it cannot be billed: remove it from the request.`,
    param,
    'unsupported_parameter',
  );
}

/** Adds `calls` of `tool` to the ask. */
export function askServerTool(ask: BillingAsk, tool: ServerTool, calls: number): void {
  ask.serverToolCalls = { ...ask.serverToolCalls, [tool]: (ask.serverToolCalls?.[tool] ?? 0) + calls };
}

/** Every server-tool call the ask holds for. */
export function heldServerToolCalls(ask: BillingAsk | undefined): number {
  return Object.values(ask?.serverToolCalls ?? {}).reduce((a, b) => a + (b ?? 0), 0);
}
