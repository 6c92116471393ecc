import type { ConverseResponse, TokenUsage } from '@aws-sdk/client-bedrock-runtime';
import type { ChatCompletion, ChatCompletionMessageToolCall, FinishReason } from '../../contract/openai';
import { chatCompletion, completionUsage, type ProviderTokenCounts } from '../openai-shapes';

/**
 * Converse's stopReason in OpenAI's words. `tool_use` is `tool_calls` only when a real tool was
 * called: the JSON-mode tool is the answer itself, so it ends with `stop`.
 */
export function bedrockFinishReason(stopReason: string | undefined, calledTools: boolean): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return calledTools ? 'tool_calls' : 'stop';
    case 'content_filtered':
    case 'guardrail_intervened':
      return 'content_filter';
    default:
      // end_turn, stop_sequence and anything newer.
      return 'stop';
  }
}

export function bedrockTokenCounts(usage: TokenUsage | undefined): ProviderTokenCounts {
  return {
    input: usage?.inputTokens ?? 0,
    output: usage?.outputTokens ?? 0,
    cacheRead: usage?.cacheReadInputTokens ?? 0,
    cacheWrite: usage?.cacheWriteInputTokens ?? 0,
  };
}

/** A Converse answer → a ChatCompletion; `jsonToolName`'s input becomes the message content. */
export function bedrockResponseToCompletion(
  response: ConverseResponse,
  meta: { id: string; model: string; jsonToolName: string | undefined },
): ChatCompletion {
  const text: string[] = [];
  const toolCalls: ChatCompletionMessageToolCall[] = [];
  for (const block of response.output?.message?.content ?? []) {
    if (block.text !== undefined) text.push(block.text);
    else if (block.toolUse) {
      const { toolUseId, name, input } = block.toolUse;
      const args = JSON.stringify(input ?? {});
      if (name === meta.jsonToolName) text.push(args);
      else toolCalls.push({ id: toolUseId ?? '', type: 'function', function: { name: name ?? '', arguments: args } });
    }
  }
  return chatCompletion({
    id: meta.id,
    model: meta.model,
    text,
    toolCalls,
    finishReason: bedrockFinishReason(response.stopReason, toolCalls.length > 0),
    usage: completionUsage(bedrockTokenCounts(response.usage)),
  });
}
