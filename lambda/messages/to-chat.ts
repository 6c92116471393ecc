import { invalidRequest, type GatewayError } from '../contract/errors';
import type { ChatCompletionRequest, ChatMessage } from '../contract/request';
import type {
  ContentBlockParam,
  ImageBlockParam,
  MessageParam,
  MessagesRequest,
  TextBlockParam,
  ToolResultBlockParam,
  ToolUseBlockParam,
} from './wire';

type UserPart = Exclude<Extract<ChatMessage, { role: 'user' }>['content'], string>[number];
type ChatTool = NonNullable<ChatCompletionRequest['tools']>[number];

/** What a Messages request becomes on a route that speaks Chat Completions (OpenAI-compatible, Bedrock, mock). */
export interface ChatTranslation {
  request: ChatCompletionRequest;
  /**
   * The first part of the request such a route cannot serve. It is thrown only when such a route
   * is tried: the same request may still be served whole by an Anthropic route.
   */
  unsupported?: GatewayError;
  /** Anthropic-defined and server tools (`bash_20250124`, `web_search_…`) the route cannot run: dropped, named in `x-itapi-ignored`. */
  droppedTools: string[];
}

/** OpenAI's function names; Anthropic allows up to 128 characters. */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** OpenAI takes at most four stop sequences. */
const MAX_STOP_SEQUENCES = 4;

/**
 * Anthropic Messages → Chat Completions, with only Chat Completions' own fields, so nothing
 * Claude-only reaches an OpenAI upstream (docs/CLIENTS.md has the table):
 *
 * | Messages | Chat Completions |
 * |---|---|
 * | `system`, `role: "system"` messages (also mid-conversation) | system messages, in place |
 * | text, image (base64 → data URL, url) blocks | text, image_url parts |
 * | assistant `tool_use` blocks | assistant `tool_calls` (`arguments` = the input as JSON), ids kept |
 * | user `tool_result` blocks | `tool` messages (`is_error` → `Error: ` prefix; images → a user message after) |
 * | `thinking`, `redacted_thinking` blocks | dropped (their signatures are only valid for Anthropic) |
 * | custom tools, `tool_choice` auto/any/tool/none, `disable_parallel_tool_use` | function tools, auto/required/function/none, `parallel_tool_calls: false` |
 * | `stop_sequences` (≤ 4), `temperature`, `top_p` | `stop`, `temperature`, `top_p` |
 * | `max_tokens` | `max_completion_tokens` (admission's output limit) |
 * | `output_config.format` (JSON schema) | `response_format` `json_schema` |
 * | `thinking`, `context_management`, `output_config.effort`, `top_k`, `metadata`, `cache_control`, `container`, `mcp_servers`, … | dropped |
 */
export function messagesToChat(request: MessagesRequest, model: string): ChatTranslation {
  let unsupported: GatewayError | undefined;
  const refuse = (param: string, why: string) => {
    unsupported ??= invalidRequest(`${param}: ${why} The route serving this model speaks Chat Completions, not Anthropic's Messages API.`, param, 'unsupported_parameter');
  };

  const messages: ChatMessage[] = [];
  if (request.system !== undefined) {
    const text = systemText(request.system);
    if (text) messages.push({ role: 'system', content: text });
  }
  request.messages.forEach((message, i) => messages.push(...chatMessages(message, `messages[${i}]`, refuse)));
  if (messages.length === 0) refuse('messages', 'There is nothing to send once thinking blocks are left out.');

  const chat: ChatCompletionRequest = { model, messages, max_completion_tokens: request.max_tokens };
  if (request.stream === true) chat.stream = true;
  if (request.temperature !== undefined) chat.temperature = request.temperature;
  if (request.top_p !== undefined) chat.top_p = request.top_p;
  if (request.stop_sequences?.length) {
    if (request.stop_sequences.length > MAX_STOP_SEQUENCES) refuse('stop_sequences', `At most ${MAX_STOP_SEQUENCES} stop sequences are supported here.`);
    else chat.stop = request.stop_sequences;
  }

  const droppedTools: string[] = [];
  const tools: ChatTool[] = [];
  (request.tools ?? []).forEach((tool, i) => {
    if (tool.type !== undefined && tool.type !== 'custom') {
      droppedTools.push(tool.name);
      return;
    }
    if (!FUNCTION_NAME.test(tool.name)) {
      refuse(`tools[${i}].name`, 'Tool names must be 1-64 characters of a-z, A-Z, 0-9, _ and - here.');
      return;
    }
    tools.push({
      type: 'function',
      function: {
        name: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        parameters: tool.input_schema ?? { type: 'object' },
        ...(tool.strict !== undefined ? { strict: tool.strict } : {}),
      },
    });
  });
  if (tools.length) chat.tools = tools;

  const choice = request.tool_choice;
  if (choice && tools.length) {
    if (choice.type === 'auto') chat.tool_choice = 'auto';
    else if (choice.type === 'any') chat.tool_choice = 'required';
    else if (choice.type === 'none') chat.tool_choice = 'none';
    else if (tools.some((t) => t.function.name === choice.name)) chat.tool_choice = { type: 'function', function: { name: choice.name } };
    if (choice.type !== 'none' && choice.disable_parallel_tool_use) chat.parallel_tool_calls = false;
  }
  if ((choice?.type === 'any' || choice?.type === 'tool') && chat.tool_choice === undefined) {
    const named = choice.type === 'tool' ? `'${choice.name}'` : 'a tool';
    refuse('tool_choice', `It forces ${named}, which the route cannot run${droppedTools.length ? ` (dropped: ${droppedTools.join(', ')})` : ''}.`);
  }

  const format = request.output_config?.format;
  if (format) chat.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema } };

  return { request: chat, unsupported, droppedTools };
}

function systemText(system: string | TextBlockParam[]): string {
  return typeof system === 'string' ? system : system.map((b) => b.text).join('\n\n');
}

type Refuse = (param: string, why: string) => void;

function chatMessages(message: MessageParam, param: string, refuse: Refuse): ChatMessage[] {
  if (typeof message.content === 'string') {
    if (message.role === 'system') return [{ role: 'system', content: message.content }];
    return [{ role: message.role, content: message.content }];
  }
  const blocks = message.content;
  if (message.role === 'system') {
    const texts: string[] = [];
    blocks.forEach((block, j) => {
      if (block.type === 'text') texts.push((block as TextBlockParam).text);
      else refuse(`${param}.content[${j}]`, `A system message may hold only text blocks, not '${block.type}'.`);
    });
    return [{ role: 'system', content: texts.join('\n\n') }];
  }
  if (message.role === 'assistant') return assistantMessage(blocks, param, refuse);
  return userMessages(blocks, param, refuse);
}

function assistantMessage(blocks: ContentBlockParam[], param: string, refuse: Refuse): ChatMessage[] {
  const texts: string[] = [];
  const calls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = [];
  blocks.forEach((block, j) => {
    switch (block.type) {
      case 'text':
        texts.push((block as TextBlockParam).text);
        return;
      case 'tool_use': {
        const use = block as ToolUseBlockParam;
        calls.push({ id: use.id, type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input) } });
        return;
      }
      case 'thinking':
      case 'redacted_thinking':
        return;
      default:
        // Server-tool calls and results are Anthropic's own turns: a translated route never made them.
        if (/^(server_tool_use|.*_tool_result)$/.test(block.type)) return;
        refuse(`${param}.content[${j}]`, `Assistant blocks of type '${block.type}' are not supported here.`);
    }
  });
  const text = texts.join('');
  if (!text && calls.length === 0) return [];
  return [{ role: 'assistant', content: text || null, ...(calls.length ? { tool_calls: calls } : {}) }];
}

/**
 * A user turn: its tool results first, as `tool` messages right after the assistant's calls (as
 * Chat Completions needs them), then its own text and images as one user message.
 */
function userMessages(blocks: ContentBlockParam[], param: string, refuse: Refuse): ChatMessage[] {
  const toolMessages: ChatMessage[] = [];
  const parts: UserPart[] = [];
  const toolImages: UserPart[] = [];
  blocks.forEach((block, j) => {
    const at = `${param}.content[${j}]`;
    switch (block.type) {
      case 'text':
        parts.push({ type: 'text', text: (block as TextBlockParam).text });
        return;
      case 'image': {
        const part = imagePart(block as ImageBlockParam, at, refuse);
        if (part) parts.push(part);
        return;
      }
      case 'tool_result': {
        const result = block as ToolResultBlockParam;
        const texts: string[] = [];
        if (typeof result.content === 'string') texts.push(result.content);
        else {
          (result.content ?? []).forEach((inner, k) => {
            if (inner.type === 'text') texts.push((inner as TextBlockParam).text);
            else if (inner.type === 'image') {
              const part = imagePart(inner as ImageBlockParam, `${at}.content[${k}]`, refuse);
              if (part) toolImages.push(part);
            } else refuse(`${at}.content[${k}]`, `Tool results holding '${inner.type}' blocks are not supported here.`);
          });
        }
        const text = texts.join('\n');
        toolMessages.push({ role: 'tool', tool_call_id: result.tool_use_id, content: result.is_error ? `Error: ${text}` : text });
        return;
      }
      case 'thinking':
      case 'redacted_thinking':
        return;
      default:
        refuse(at, `Blocks of type '${block.type}' are not supported here.`);
    }
  });
  const out = [...toolMessages];
  if (toolImages.length) out.push({ role: 'user', content: [{ type: 'text', text: 'Images returned by the tool:' }, ...toolImages] });
  if (parts.length) out.push({ role: 'user', content: parts });
  return out;
}

function imagePart(block: ImageBlockParam, param: string, refuse: Refuse): UserPart | undefined {
  const source = block.source;
  if (source.type === 'base64') return { type: 'image_url', image_url: { url: `data:${source.media_type};base64,${source.data}` } };
  if (source.type === 'url') return { type: 'image_url', image_url: { url: source.url } };
  refuse(`${param}.source`, "Images from Anthropic's Files API are not supported here; send base64 or a URL.");
  return undefined;
}
