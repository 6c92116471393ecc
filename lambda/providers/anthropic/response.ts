import type { ChatCompletion, ChatCompletionMessageToolCall, FinishReason } from '../../contract/openai';
import { chatCompletion, completionUsage, type ProviderTokenCounts } from '../openai-shapes';
import type { AnthropicMessageResponse, AnthropicUsage } from './wire';

/**
 * Anthropic's stop_reason in OpenAI's words. `tool_use` is `tool_calls` only when a real tool was
 * called: the JSON-mode tool is the answer itself, so it ends with `stop`.
 */
export function anthropicFinishReason(stopReason: string | null | undefined, calledTools: boolean): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return calledTools ? 'tool_calls' : 'stop';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn and anything newer.
      return 'stop';
  }
}

export function anthropicTokenCounts(usage: AnthropicUsage | undefined): ProviderTokenCounts {
  return applyAnthropicUsage({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, (usage ?? {}) as Record<string, unknown>);
}

/**
 * Anthropic's usage fields over what was known, field by field: `message_delta`'s counts are
 * cumulative and replace `message_start`'s, but only `message_start` splits cache writes by
 * lifetime (`cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`), so a
 * split once known is kept. `server_tool_use.<tool>_requests` counts calls of `<tool>`.
 */
export function applyAnthropicUsage(counts: ProviderTokenCounts, usage: Record<string, unknown>): ProviderTokenCounts {
  const n = (value: unknown, before: number) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : before);
  const out: ProviderTokenCounts = {
    ...counts,
    input: n(usage.input_tokens, counts.input),
    output: n(usage.output_tokens, counts.output),
    cacheRead: n(usage.cache_read_input_tokens, counts.cacheRead),
    cacheWrite: n(usage.cache_creation_input_tokens, counts.cacheWrite),
  };
  const split = usage.cache_creation;
  if (split && typeof split === 'object') out.cacheWrite1h = n((split as Record<string, unknown>).ephemeral_1h_input_tokens, counts.cacheWrite1h ?? 0);
  const tools = usage.server_tool_use;
  if (tools && typeof tools === 'object') {
    const calls = { ...counts.serverToolCalls };
    for (const [field, value] of Object.entries(tools)) {
      if (!field.endsWith('_requests')) continue;
      const tool = field.slice(0, -'_requests'.length);
      calls[tool] = n(value, calls[tool] ?? 0);
    }
    out.serverToolCalls = calls;
  }
  if (typeof usage.service_tier === 'string') out.serviceTier = usage.service_tier;
  return out;
}

/** A Messages API answer → a ChatCompletion; `jsonToolName`'s input becomes the message content. */
export function anthropicResponseToCompletion(message: AnthropicMessageResponse, jsonToolName: string | undefined): ChatCompletion {
  const text: string[] = [];
  const toolCalls: ChatCompletionMessageToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') text.push(block.text);
    else if (block.type === 'tool_use') {
      if (block.name === jsonToolName) text.push(JSON.stringify(block.input));
      else toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input) } });
    }
  }
  return chatCompletion({
    id: `chatcmpl-${message.id}`,
    model: message.model,
    text,
    toolCalls,
    finishReason: anthropicFinishReason(message.stop_reason, toolCalls.length > 0),
    usage: completionUsage(anthropicTokenCounts(message.usage)),
  });
}
