import type { ModelEntry } from '../catalog';
import type { RequestOptions } from '../core/call';
import type { Prompt } from '../core/prompt';
import { askServerTool, pricesServerTool, pricesTier, unpricedTierError, unpricedToolError, type BillingAsk } from '../money/billing-ask';

/**
 * What a decoded Responses request may be billed beyond its tokens, or the 400 for what the model
 * does not price: its `service_tier`; a `web_search` tool (which the decoder keeps only where the
 * model prices web search, `decodeResponsesRequest`'s `webSearch`), held and billed as one search
 * a request, as OpenAI's search models on Chat Completions bill it; documents but plain text (a PDF,
 * or one by URL or file id: sizes the gateway cannot know; only a Claude route takes documents).
 */
export function responsesBillingAsk(prompt: Prompt, options: Pick<RequestOptions, 'serviceTier' | 'tools'>, model: ModelEntry): BillingAsk {
  const ask: BillingAsk = {};
  const tier = options.serviceTier;
  if (tier !== undefined) {
    if (!pricesTier(model, tier)) throw unpricedTierError(model, tier);
    ask.serviceTier = tier;
  }
  if (options.tools.some((tool) => tool.kind === 'provider' && tool.wire === 'openai-responses')) {
    if (!pricesServerTool(model, 'web_search')) throw unpricedToolError(model, "Web search ('tools')", 'tools');
    askServerTool(ask, 'web_search', 1);
    ask.impliedServerToolCalls = { web_search: 1 };
  }
  const unknown = unknownSizeDocuments(prompt);
  if (unknown) ask.unknownSizeInputs = unknown;
  return ask;
}

/**
 * Documents but plain text in the prompt, tool results included: by URL or file id, or as data (a
 * PDF, which Anthropic bills by the page, its text and an image of each, 1,500-3,000 tokens a page:
 * its bytes do not tell).
 */
function unknownSizeDocuments(prompt: Prompt): number {
  let count = 0;
  for (const turn of prompt.turns) {
    if (turn.role !== 'user') continue;
    for (const part of turn.parts) {
      const blocks = part.type === 'tool_result' ? part.content : [part];
      for (const block of blocks) if (block.type === 'document' && block.source.kind !== 'text') count++;
    }
  }
  return count;
}
