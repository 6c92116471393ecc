import type { CompletionUsage } from './openai';

/**
 * What a provider reports beyond OpenAI's usage fields and bills for: cache writes by lifetime,
 * server-tool calls, the service tier that served the request. It rides on the usage object under
 * a non-enumerable symbol, so it reaches settlement through every endpoint's translation (the
 * usage object travels by reference) and is never serialised to a client; each endpoint writes what its
 * own wire has fields for (Anthropic's `cache_creation_input_tokens`, Responses'
 * `cache_write_tokens`).
 */
export const USAGE_EXTRAS: unique symbol = Symbol('itapi.usageExtras');

export interface UsageExtras {
  /** 5-minute cache writes (Anthropic's default lifetime; all writes when the provider gives no split). Inside `prompt_tokens`. */
  cacheWriteTokens?: number;
  /** 1-hour cache writes. Inside `prompt_tokens`. */
  cacheWrite1hTokens?: number;
  /** Calls of server tools, by the catalog's name (`web_search`, `web_fetch`, `code_execution`). */
  serverToolCalls?: Record<string, number>;
  /** The service tier the upstream says it served the request with (`priority`, `default`, `standard`). */
  serviceTier?: string;
}

export type CarriedUsage = CompletionUsage & { [USAGE_EXTRAS]?: UsageExtras };

/** The usage with its extras attached (only the fields that say something). */
export function withUsageExtras<U extends CompletionUsage>(usage: U, extras: UsageExtras): U & CarriedUsage {
  const kept: UsageExtras = {};
  if (extras.cacheWriteTokens) kept.cacheWriteTokens = extras.cacheWriteTokens;
  if (extras.cacheWrite1hTokens) kept.cacheWrite1hTokens = extras.cacheWrite1hTokens;
  const calls = Object.entries(extras.serverToolCalls ?? {}).filter(([, n]) => n > 0);
  if (calls.length) kept.serverToolCalls = Object.fromEntries(calls);
  if (extras.serviceTier) kept.serviceTier = extras.serviceTier;
  // Not enumerable: equality checks and copies of the wire object see only OpenAI's fields; the object itself travels by reference.
  Object.defineProperty(usage, USAGE_EXTRAS, { value: { ...(usage as CarriedUsage)[USAGE_EXTRAS], ...kept }, enumerable: false, writable: true, configurable: true });
  return usage as U & CarriedUsage;
}

export function usageExtras(usage: CompletionUsage | undefined): UsageExtras {
  return (usage as CarriedUsage | undefined)?.[USAGE_EXTRAS] ?? {};
}

/** All cache writes, whatever their lifetime. */
export function cacheWritesOf(usage: CompletionUsage | undefined): number {
  const extras = usageExtras(usage);
  return (extras.cacheWriteTokens ?? 0) + (extras.cacheWrite1hTokens ?? 0);
}
