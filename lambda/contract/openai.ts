// The OpenAI wire types, named as the official SDK (generated from the OpenAPI spec) names them.
export type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionMessageToolCall,
  ChatCompletionTokenLogprob,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
export type { CompletionUsage } from 'openai/resources/completions';
export type { Model, ModelsPage } from 'openai/resources/models';

/** The values OpenAI documents for `finish_reason`; a provider's own words never leave the gateway. */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call';
