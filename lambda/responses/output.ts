import type { ChatCompletion, CompletionUsage, FinishReason } from '../contract/openai';
import { cacheWritesOf } from '../contract/usage';
import type { CreateResponseRequest, OutputItem, ResponseObject, ResponseUsage } from '../contract/responses';
import type { EchoedFunctionTool } from './chat-request';
import type { ResponseIds } from './response-ids';

/** What a response says of its request, fixed before the upstream answers. */
export interface ResponseFrame {
  ids: ResponseIds;
  request: CreateResponseRequest;
  tools: EchoedFunctionTool[];
  modelId: string;
  createdAtMs: number;
  store: boolean;
}

/** The response as `response.created` carries it: in progress, no output, no usage (null would not validate). */
export function inProgressResponse(frame: ResponseFrame): ResponseObject {
  const r = frame.request;
  return {
    id: frame.ids.responseId,
    object: 'response',
    created_at: Math.floor(frame.createdAtMs / 1000),
    status: 'in_progress',
    completed_at: null,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    max_tool_calls: r.max_tool_calls ?? null,
    model: frame.modelId,
    output: [],
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: r.previous_response_id ?? null,
    prompt_cache_key: r.prompt_cache_key ?? null,
    reasoning: { effort: r.reasoning?.effort ?? null, summary: r.reasoning?.summary ?? null },
    safety_identifier: r.safety_identifier ?? null,
    service_tier: 'default',
    store: frame.store,
    temperature: r.temperature ?? 1,
    text: { format: (r.text?.format ?? { type: 'text' }) as NonNullable<ResponseObject['text']>['format'], verbosity: r.text?.verbosity ?? 'medium' },
    tool_choice: (r.tool_choice ?? 'auto') as ResponseObject['tool_choice'],
    tools: frame.tools,
    top_logprobs: r.top_logprobs ?? 0,
    top_p: r.top_p ?? 1,
    truncation: r.truncation ?? 'disabled',
    metadata: r.metadata ?? {},
    ...(r.user ? { user: r.user } : {}),
  };
}

export type TerminalStatus = 'completed' | 'incomplete' | 'failed';

/** How Chat Completions' finish reasons end a response. */
export function terminalOf(finishReason: FinishReason | null | undefined): { status: 'completed' | 'incomplete'; incompleteDetails: ResponseObject['incomplete_details'] } {
  if (finishReason === 'length') return { status: 'incomplete', incompleteDetails: { reason: 'max_output_tokens' } };
  if (finishReason === 'content_filter') return { status: 'incomplete', incompleteDetails: { reason: 'content_filter' } };
  return { status: 'completed', incompleteDetails: null };
}

/**
 * Chat usage → Responses usage. OpenAI's `input_tokens` includes cached ones, as `prompt_tokens`
 * does; every detail the spec requires is present (0 when the provider gave none), and an
 * Anthropic or Bedrock route's cache writes are its `cache_write_tokens`.
 */
export function responseUsage(usage: CompletionUsage): ResponseUsage {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0, cache_write_tokens: cacheWritesOf(usage) } as ResponseUsage['input_tokens_details'],
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: usage.completion_tokens_details?.reasoning_tokens ?? 0 },
    total_tokens: usage.total_tokens ?? usage.prompt_tokens + usage.completion_tokens,
  };
}

/** The output items of a whole (JSON) chat completion: the message first, then each function call. */
export function outputOfCompletion(completion: ChatCompletion, ids: ResponseIds, status: 'completed' | 'incomplete'): OutputItem[] {
  const message = completion.choices[0]?.message;
  if (!message) return [];
  const output: OutputItem[] = [];
  const content: Extract<OutputItem, { type: 'message' }>['content'] = [];
  if (message.content) content.push({ type: 'output_text', text: message.content, annotations: [], logprobs: [] });
  if (message.refusal) content.push({ type: 'refusal', refusal: message.refusal });
  if (content.length) output.push({ id: ids.output('msg', output.length), type: 'message', role: 'assistant', status, content });
  for (const call of message.tool_calls ?? []) {
    if (call.type !== 'function') continue;
    output.push({
      id: ids.output('fc', output.length),
      type: 'function_call',
      status,
      call_id: call.id,
      name: call.function.name,
      arguments: call.function.arguments,
    });
  }
  return output;
}

/** The response in its final state, with its output and usage. */
export function finalResponse(
  base: ResponseObject,
  end: { status: TerminalStatus; output: OutputItem[]; usage: ResponseUsage; incompleteDetails?: ResponseObject['incomplete_details']; error?: ResponseObject['error']; nowMs: number },
): ResponseObject {
  return {
    ...base,
    status: end.status,
    completed_at: end.status === 'completed' ? Math.floor(end.nowMs / 1000) : null,
    error: end.error ?? null,
    incomplete_details: end.incompleteDetails ?? null,
    output: end.output,
    usage: end.usage,
  };
}
