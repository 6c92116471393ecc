import type { ModelEntry } from '../catalog';
import {
  anthropicServerTool,
  askServerTool,
  DEFAULT_SERVER_TOOL_USES,
  pricesServerTool,
  pricesTier,
  unpricedTierError,
  unpricedToolError,
  type BillingAsk,
} from '../money/billing-ask';
import type { MessagesRequest } from './request';

/**
 * What a Messages request may be billed beyond its tokens, or the 400 (Anthropic's shape, no
 * `param`: the message names the tool or field) for what the model does not price: on a model
 * with an Anthropic route (the only one they reach), server tools
 * (`web_search_…`, `web_fetch_…`, `code_execution_…`) held at `max_uses` (else
 * DEFAULT_SERVER_TOOL_USES, which the gateway then sends), `mcp_servers` (never priced), a
 * `service_tier` other than Anthropic's `auto` and `standard_only`; `cache_control` blocks (a
 * 1-hour `ttl` holds the prompt at the 1-hour write price); documents by URL or file id, or as
 * base64 data (a PDF: sizes the gateway cannot know).
 */
export function messagesBillingAsk(request: MessagesRequest, model: ModelEntry): BillingAsk {
  const ask: BillingAsk = {};
  // Only an Anthropic route gets server tools and MCP servers; the others drop them (named in x-itapi-ignored), unbilled.
  const reachesAnthropic = model.routes.some((r) => r.provider === 'anthropic');
  for (const tool of (reachesAnthropic ? (request.tools ?? []) : []) as Array<{ type?: unknown; name?: unknown; max_uses?: unknown }>) {
    const type = typeof tool.type === 'string' ? tool.type : undefined;
    const serverTool = anthropicServerTool(type);
    if (!serverTool) continue;
    if (!pricesServerTool(model, serverTool)) throw unpricedToolError(model, `The server tool '${type}' (tools: '${String(tool.name)}')`, null);
    const maxUses = typeof tool.max_uses === 'number' && tool.max_uses > 0 ? tool.max_uses : DEFAULT_SERVER_TOOL_USES;
    askServerTool(ask, serverTool, maxUses);
  }
  const mcp = request.mcp_servers;
  if (reachesAnthropic && mcp != null && (!Array.isArray(mcp) || mcp.length > 0)) throw unpricedToolError(model, "An MCP server ('mcp_servers')", null);
  const tier = request.service_tier;
  if (tier != null) {
    if (typeof tier !== 'string' || !pricesTier(model, tier)) throw unpricedTierError(model, String(tier), null);
    ask.serviceTier = tier;
  }
  const found = scan(request);
  if (found.cacheWrite) ask.cacheWrite = true;
  if (found.cacheWrite1h) ask.cacheWrite1h = true;
  if (found.unknownSizeInputs) ask.unknownSizeInputs = found.unknownSizeInputs;
  return ask;
}

/** The client's tools with `max_uses` set on each server tool that named none, so that the bill stays within the hold. */
export function boundedServerTools(tools: unknown): unknown {
  if (!Array.isArray(tools)) return tools;
  return tools.map((tool: unknown) => {
    if (!tool || typeof tool !== 'object') return tool;
    const t = tool as Record<string, unknown>;
    const server = anthropicServerTool(typeof t.type === 'string' ? t.type : undefined);
    // Code execution takes no max_uses (and is billed by container time, so it is priced only where an operator says so).
    return server && server !== 'code_execution' && typeof t.max_uses !== 'number' ? { ...t, max_uses: DEFAULT_SERVER_TOOL_USES } : tool;
  });
}

/** Cache-control marks and inputs of unknown size anywhere in the prompt (system, messages, tools). */
function scan(request: MessagesRequest): { cacheWrite: boolean; cacheWrite1h: boolean; unknownSizeInputs: number } {
  const out = { cacheWrite: false, cacheWrite1h: false, unknownSizeInputs: 0 };
  const visit = (value: unknown, depth: number): void => {
    if (depth > 64 || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
      return;
    }
    const node = value as Record<string, unknown>;
    const cache = node.cache_control as Record<string, unknown> | null | undefined;
    if (cache && typeof cache === 'object') {
      out.cacheWrite = true;
      if (cache.ttl === '1h') out.cacheWrite1h = true;
    }
    if (node.type === 'document') {
      const source = node.source as Record<string, unknown> | undefined;
      // A PDF's cost is per page (its text and an image of each), which its bytes do not tell.
      if (source && (source.type === 'url' || source.type === 'file' || source.type === 'base64')) out.unknownSizeInputs++;
    }
    for (const [field, child] of Object.entries(node)) if (field !== 'cache_control' && typeof child === 'object') visit(child, depth + 1);
  };
  visit(request.system, 0);
  visit(request.messages, 0);
  visit(request.tools, 0);
  return out;
}
