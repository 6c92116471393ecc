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
  return {
    input: usage?.input_tokens ?? 0,
    output: usage?.output_tokens ?? 0,
    cacheRead: usage?.cache_read_input_tokens ?? 0,
    cacheWrite: usage?.cache_creation_input_tokens ?? 0,
  };
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
