import type { ChatCompletionRequest } from '../../contract/request';
import {
  claudeTemperature,
  outputTokenLimit,
  planTools,
  rejectUnsupportedParameters,
  stopSequences,
  thinkingBudget,
  toConversation,
  type ToolPlan,
  type TurnPart,
} from '../conversation';
import type { AnthropicMessagesRequest, AnthropicRequestBlock, AnthropicToolChoice } from './wire';

export interface AnthropicRequestPlan {
  body: AnthropicMessagesRequest;
  /** The tool carrying a JSON-mode answer, whose input becomes the message content. */
  jsonToolName: string | undefined;
}

/**
 * OpenAI Chat Completions request → Anthropic Messages body.
 *
 * | OpenAI | Anthropic |
 * |---|---|
 * | system, developer messages | `system` text blocks, in order |
 * | user text / image_url parts | text / image blocks (URL or base64 source) |
 * | assistant tool_calls | tool_use blocks, arguments parsed (invalid JSON → 400) |
 * | tool messages | tool_result blocks in one user turn |
 * | tools, tool_choice, parallel_tool_calls | tools, tool_choice (required → any), disable_parallel_tool_use |
 * | stop | stop_sequences |
 * | temperature 0–2 | temperature 0–1 (clamped) |
 * | max_completion_tokens / max_tokens | max_tokens (else the catalog's ceiling) |
 * | response_format json | a forced tool whose input is the JSON |
 * | user | metadata.user_id |
 * | reasoning_effort low / medium / high / xhigh | thinking with a budget of 1,024 / 4,096 / 16,384 / 32,000 tokens, within max_tokens (see `thinkingBudget`) |
 * | logprobs, top_logprobs, n > 1, seed, penalties | 400 |
 */
export function anthropicRequest(request: ChatCompletionRequest, model: string, maxOutputTokens: number, stream: boolean): AnthropicRequestPlan {
  rejectUnsupportedParameters(request, 'Anthropic');
  const conversation = toConversation(request.messages);
  const plan = planTools(request);
  const body: AnthropicMessagesRequest = {
    model,
    max_tokens: outputTokenLimit(request, maxOutputTokens),
    messages: conversation.turns.map((turn) => ({ role: turn.role, content: turn.parts.map(anthropicBlock) })),
  };
  if (conversation.system.length > 0) body.system = conversation.system.map((text) => ({ type: 'text', text }));
  const temperature = claudeTemperature(request.temperature);
  if (temperature !== undefined) body.temperature = temperature;
  if (request.top_p != null) body.top_p = request.top_p;
  const stop = stopSequences(request);
  if (stop) body.stop_sequences = stop;
  if (plan.tools.length > 0) {
    body.tools = plan.tools.map((t) => ({
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      input_schema: t.schema,
    }));
    const choice = anthropicToolChoice(plan);
    if (choice) body.tool_choice = choice;
  }
  if (request.user !== undefined) body.metadata = { user_id: request.user };
  const budget = thinkingBudget(request, conversation, plan, { maxTokens: body.max_tokens, temperature: body.temperature, topP: body.top_p });
  if (budget !== undefined) body.thinking = { type: 'enabled', budget_tokens: budget };
  if (stream) body.stream = true;
  return { body, jsonToolName: plan.json?.name };
}

function anthropicToolChoice(plan: ToolPlan): AnthropicToolChoice | undefined {
  const choice = plan.choice;
  if (choice?.type === 'none') return { type: 'none' };
  const parallel = plan.parallel ? {} : { disable_parallel_tool_use: true };
  if (!choice) return plan.parallel ? undefined : { type: 'auto', ...parallel };
  if (choice.type === 'tool') return { type: 'tool', name: choice.name, ...parallel };
  return { type: choice.type, ...parallel };
}

function anthropicBlock(part: TurnPart): AnthropicRequestBlock {
  switch (part.type) {
    case 'text':
      return { type: 'text', text: part.text };
    case 'image':
      return {
        type: 'image',
        source: part.source.kind === 'url'
          ? { type: 'url', url: part.source.url }
          : { type: 'base64', media_type: part.source.mediaType, data: part.source.data },
      };
    case 'tool_call':
      return { type: 'tool_use', id: part.id, name: part.name, input: part.input };
    case 'tool_result':
      return {
        type: 'tool_result',
        tool_use_id: part.toolCallId,
        content: part.text.length === 1 ? part.text[0] : part.text.map((text) => ({ type: 'text', text })),
      };
  }
}
