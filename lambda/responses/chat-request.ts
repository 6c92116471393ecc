import { invalidRequest } from '../contract/errors';
import { parseChatCompletionRequest, type ChatCompletionRequest, type ChatMessage } from '../contract/request';
import type { CreateResponseRequest, FunctionTool, HostedTool, StoredItem, TextFormat, ToolChoice } from '../contract/responses';
import { headerWord } from '../chat/pipeline';
import { chatMessagesOf } from './items';

/** The Chat Completions request a Responses request becomes, and what the response echoes of it. */
export interface ChatPlan {
  chat: ChatCompletionRequest;
  /** The function tools sent upstream, as the response echoes them. */
  tools: EchoedFunctionTool[];
  /** Tools dropped because no route runs them (`web_search`, `namespace:multi_agent_v1`, …). */
  ignoredTools: string[];
}

export interface EchoedFunctionTool {
  type: 'function';
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean | null;
}

/** Chat Completions' `reasoning_effort` has no `max`; `xhigh` is its highest. */
const CHAT_REASONING_EFFORT = { none: 'none', minimal: 'minimal', low: 'low', medium: 'medium', high: 'high', xhigh: 'xhigh', max: 'xhigh' } as const;

/**
 * Responses request → Chat Completions request, the one every route speaks inside itapi.
 *
 * | Responses | Chat Completions |
 * |---|---|
 * | `instructions`, system/developer messages | system messages (in place) |
 * | messages, function_call, function_call_output | user / assistant (`tool_calls`, ids = `call_id`) / tool messages |
 * | function tools; hosted tools | tools; dropped (named in `ignoredTools`) |
 * | `tool_choice` (`allowed_tools` narrows `tools`) | `tool_choice`; forcing a hosted tool → 400 |
 * | `text.format` json_object / json_schema; `text.verbosity` | `response_format`; `verbosity` |
 * | `reasoning.effort` | `reasoning_effort`: as is to OpenAI-compatible routes, as a thinking budget to Claude (Anthropic routes, Claude on Bedrock); other Bedrock models ignore it |
 * | `max_output_tokens`, `temperature`, `top_p`, `parallel_tool_calls` | `max_completion_tokens`, same names |
 * | `safety_identifier` (else `user`) | `user` |
 * | `store`, `include`, `prompt_cache_key`, `metadata`, `client_metadata`, `truncation`, … | not forwarded |
 */
/**
 * Responses' web-search tool types, current and preview: run as Chat's `web_search_options` where
 * the model prices `web_search` (`options.webSearch`), else dropped like every hosted tool, so
 * that nothing unpriced reaches the upstream (Codex sends one with every request).
 */
const WEB_SEARCH_TOOL = /^web_search(_preview)?(_\d{4}_\d{2}_\d{2})?$/;

export function chatRequestOf(request: CreateResponseRequest, conversation: StoredItem[], modelId: string, options: { webSearch?: boolean } = {}): ChatPlan {
  const messages: ChatMessage[] = [];
  if (request.instructions) messages.push({ role: 'system', content: request.instructions });
  messages.push(...chatMessagesOf(conversation));
  if (!messages.some((m) => m.role !== 'system')) {
    throw invalidRequest("The conversation has no message for the model to answer: send a user message in 'input'.", 'input');
  }

  const functionTools: FunctionTool[] = [];
  const ignoredTools: string[] = [];
  let webSearch: Record<string, unknown> | undefined;
  for (const tool of request.tools ?? []) {
    if (tool.type === 'function') functionTools.push(tool);
    else if (options.webSearch && WEB_SEARCH_TOOL.test(tool.toolType)) webSearch = tool.searchContextSize ? { search_context_size: tool.searchContextSize } : {};
    else ignoredTools.push(hostedToolName(tool));
  }
  const { tools, choice } = applyToolChoice(request.tool_choice ?? undefined, functionTools, request.tools ?? []);

  const chat: Record<string, unknown> = { model: modelId, messages, stream: request.stream === true };
  if (tools.length > 0) {
    chat.tools = tools.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description != null ? { description: t.description } : {}),
        ...(t.parameters != null ? { parameters: t.parameters } : {}),
        ...(t.strict != null ? { strict: t.strict } : {}),
      },
    }));
    if (request.parallel_tool_calls != null) chat.parallel_tool_calls = request.parallel_tool_calls;
  }
  if (choice !== undefined) chat.tool_choice = choice;
  const format = responseFormatOf(request.text?.format ?? undefined);
  if (format) chat.response_format = format;
  if (request.text?.verbosity) chat.verbosity = request.text.verbosity;
  if (request.reasoning?.effort) chat.reasoning_effort = CHAT_REASONING_EFFORT[request.reasoning.effort];
  if (request.max_output_tokens != null) chat.max_completion_tokens = request.max_output_tokens;
  if (request.temperature != null) chat.temperature = request.temperature;
  if (request.top_p != null) chat.top_p = request.top_p;
  const user = request.safety_identifier ?? request.user;
  if (user) chat.user = user;
  // Billed: checked against the model's prices with the chat request (chatBillingAsk).
  if (request.service_tier != null) chat.service_tier = request.service_tier;
  if (webSearch) chat.web_search_options = webSearch;

  return {
    chat: parseChatCompletionRequest(chat),
    tools: tools.map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null })),
    ignoredTools,
  };
}

function hostedToolName(tool: HostedTool): string {
  return headerWord(tool.name ? `${tool.toolType}:${tool.name}` : tool.toolType);
}

type ChatToolChoice = ChatCompletionRequest['tool_choice'];

/**
 * `tool_choice` over the function tools a route can run. Forcing a tool that was dropped (a
 * hosted tool, or a function that is not in `tools`) is the one case that gets a 400.
 */
function applyToolChoice(choice: ToolChoice | undefined, tools: FunctionTool[], sent: CreateResponseRequest['tools'] & object): { tools: FunctionTool[]; choice: ChatToolChoice } {
  if (choice === undefined) return { tools, choice: undefined };
  if (choice === 'none') return { tools, choice: tools.length ? 'none' : undefined };
  if (choice === 'auto') return { tools, choice: tools.length ? 'auto' : undefined };
  if (choice === 'required') {
    if (!tools.length) throw forcedToolError(sent.length ? "'tool_choice' is 'required', but none of the tools is a function tool this gateway can run" : "'tool_choice' is 'required', but there are no tools");
    return { tools, choice: 'required' };
  }
  if (choice.type === 'function' && 'name' in choice && typeof choice.name === 'string') {
    const name = choice.name;
    if (!tools.some((t) => t.name === name)) throw forcedToolError(`'tool_choice' names the function '${name}', which is not among the function tools`, 'tool_choice.name');
    return { tools, choice: { type: 'function', function: { name } } };
  }
  if (choice.type === 'allowed_tools' && 'tools' in choice && Array.isArray(choice.tools)) {
    const allowed = choice.tools as Array<{ type: string; name?: string | null }>;
    const names = new Set(allowed.filter((t) => t.type === 'function' && t.name).map((t) => t.name!));
    const kept = tools.filter((t) => names.has(t.name));
    const mode = 'mode' in choice ? choice.mode : 'auto';
    if (mode === 'required' && !kept.length) {
      const hosted = allowed.filter((t) => t.type !== 'function').map((t) => t.type);
      throw forcedToolError(`'tool_choice' requires one of the allowed tools, and none is a function tool this gateway can run${hosted.length ? ` (${hosted.join(', ')})` : ''}`);
    }
    return { tools: kept, choice: kept.length ? (mode === 'required' ? 'required' : 'auto') : undefined };
  }
  const name = 'name' in choice && typeof choice.name === 'string' ? `${choice.type} '${choice.name}'` : `'${choice.type}'`;
  throw forcedToolError(`'tool_choice' forces the ${name} tool, which no route of this gateway can run (hosted tools are dropped)`, 'tool_choice.type');
}

function forcedToolError(message: string, param = 'tool_choice') {
  return invalidRequest(`${message}.`, param, 'unsupported_tool_choice');
}

function responseFormatOf(format: TextFormat | undefined): ChatCompletionRequest['response_format'] {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  const f = format as Extract<TextFormat, { type: 'json_schema' }>;
  return {
    type: 'json_schema',
    json_schema: {
      name: f.name,
      schema: f.schema,
      ...(f.description != null ? { description: f.description } : {}),
      ...(f.strict != null ? { strict: f.strict } : {}),
    },
  };
}
