import { invalidRequest } from '../contract/errors';
import type { ChatCompletionRequest, ChatMessage } from '../contract/request';
import type { ToolCallPart as PromptToolCallPart } from '../core/prompt';

/**
 * The OpenAI request reduced to what Messages-style APIs (Anthropic, Bedrock Converse) take:
 * system text apart, then alternating user/assistant turns of typed parts. Each provider folder
 * maps these parts onto its own wire shapes.
 */
export interface Conversation {
  system: string[];
  turns: Turn[];
}

export interface Turn {
  role: 'user' | 'assistant';
  parts: TurnPart[];
}

export type TurnPart = TextPart | ImagePart | ToolCallPart | ToolResultPart;

export interface TextPart {
  type: 'text';
  text: string;
}

export interface ImagePart {
  type: 'image';
  source: ImageSource;
  /** Where the image came from, for 400s that name it (`messages[1].content[0].image_url.url`). */
  param: string;
}

export type ImageSource = { kind: 'url'; url: string } | { kind: 'base64'; mediaType: ImageMediaType; data: string };

export const IMAGE_MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'] as const;
export type ImageMediaType = (typeof IMAGE_MEDIA_TYPES)[number];

/** The prompt's tool call with its arguments parsed (Converse and Messages take an object, not JSON text). */
export type ToolCallPart = Omit<PromptToolCallPart, 'arguments'> & { input: Record<string, unknown> };

export interface ToolResultPart {
  type: 'tool_result';
  toolCallId: string;
  text: string[];
}

/** Parameters OpenAI accepts that Messages-style APIs cannot honour: a 400 naming each, never a silent drop. */
export function rejectUnsupportedParameters(request: ChatCompletionRequest, provider: string): void {
  const refuse = (param: string, why: string) => {
    throw invalidRequest(`'${param}' is not supported for this model (served by ${provider}): ${why}`, param, 'unsupported_parameter');
  };
  if (request.logprobs === true) refuse('logprobs', 'the provider returns no log probabilities.');
  if (request.top_logprobs != null) refuse('top_logprobs', 'the provider returns no log probabilities.');
  if (request.n != null && request.n > 1) refuse('n', 'the provider returns one choice per request.');
  if (request.seed != null) refuse('seed', 'the provider has no deterministic sampling seed.');
  if (request.frequency_penalty != null && request.frequency_penalty !== 0) refuse('frequency_penalty', 'the provider has no frequency penalty.');
  if (request.presence_penalty != null && request.presence_penalty !== 0) refuse('presence_penalty', 'the provider has no presence penalty.');
}

/** `max_tokens` is required by these providers: the client's limit, else the catalog's ceiling. */
export function outputTokenLimit(request: ChatCompletionRequest, maxOutputTokens: number): number {
  return request.max_completion_tokens ?? request.max_tokens ?? maxOutputTokens;
}

export function stopSequences(request: ChatCompletionRequest): string[] | undefined {
  if (request.stop == null) return undefined;
  return typeof request.stop === 'string' ? [request.stop] : request.stop;
}

/** Thinking budgets (tokens) for OpenAI's `reasoning_effort`; `none` and `minimal` think not at all. */
const THINKING_BUDGET: Record<string, number> = { low: 1024, medium: 4096, high: 16_384, xhigh: 32_000, max: 32_000 };
/** Claude's smallest thinking budget. */
const MIN_THINKING_BUDGET = 1024;

/**
 * Claude's extended-thinking budget for a `reasoning_effort` (Anthropic's API, and Claude on
 * Bedrock), or undefined for none: the request is then answered without thinking rather than
 * refused. None with forced tool use (JSON mode is one), a sampling temperature other than 1 or
 * `top_p` under 0.95, which Claude refuses with thinking; none when the last assistant turn called
 * tools (Claude then wants that turn's thinking block back, and the gateway gives clients none to
 * send); the budget kept under `max_tokens`, so the hold still bounds the answer, and none under
 * Claude's minimum.
 */
export function thinkingBudget(
  request: ChatCompletionRequest,
  conversation: Conversation,
  plan: ToolPlan,
  sent: { maxTokens: number; temperature?: number; topP?: number },
): number | undefined {
  const effort = (request as { reasoning_effort?: unknown }).reasoning_effort;
  const wanted = typeof effort === 'string' ? THINKING_BUDGET[effort] : undefined;
  if (!wanted) return undefined;
  if (plan.tools.length > 0 && (plan.choice?.type === 'any' || plan.choice?.type === 'tool')) return undefined;
  const lastAssistant = [...conversation.turns].reverse().find((t) => t.role === 'assistant');
  if (lastAssistant?.parts.some((p) => p.type === 'tool_call')) return undefined;
  if (sent.temperature !== undefined && sent.temperature !== 1) return undefined;
  if (sent.topP !== undefined && sent.topP < 0.95) return undefined;
  const budget = Math.min(wanted, sent.maxTokens - 1);
  return budget >= MIN_THINKING_BUDGET ? budget : undefined;
}

/** Anthropic documents temperature as 0–1 where OpenAI takes 0–2: values above 1 become 1. */
export function claudeTemperature(temperature: number | null | undefined): number | undefined {
  return temperature == null ? undefined : Math.min(temperature, 1);
}

export function toConversation(messages: ChatMessage[]): Conversation {
  const system: string[] = [];
  const turns: Turn[] = [];
  const append = (role: Turn['role'], parts: TurnPart[]) => {
    if (parts.length === 0) return;
    const last = turns[turns.length - 1];
    // Both APIs want strictly alternating turns: adjacent same-role messages become one turn.
    if (last && last.role === role) last.parts.push(...parts);
    else turns.push({ role, parts });
  };

  messages.forEach((message, i) => {
    const param = `messages[${i}]`;
    switch (message.role) {
      case 'system':
      case 'developer':
        system.push(...textsOf(message.content).filter((t) => t.length > 0));
        return;
      case 'user':
        append('user', userParts(message.content, param));
        return;
      case 'assistant': {
        const parts: TurnPart[] = [];
        if (message.function_call != null) {
          throw invalidRequest(`'${param}.function_call' is deprecated and not supported for this model; use 'tool_calls'.`, `${param}.function_call`);
        }
        if (message.content != null) {
          const texts = typeof message.content === 'string'
            ? [message.content]
            : message.content.map((p) => (p.type === 'text' ? p.text : p.refusal));
          parts.push(...texts.filter((t) => t.length > 0).map((text): TextPart => ({ type: 'text', text })));
        }
        (message.tool_calls ?? []).forEach((call, j) => {
          parts.push({
            type: 'tool_call',
            id: call.id,
            name: call.function.name,
            input: toolArguments(call.function.arguments, `${param}.tool_calls[${j}].function.arguments`),
          });
        });
        append('assistant', parts);
        return;
      }
      case 'tool':
        append('user', [{ type: 'tool_result', toolCallId: message.tool_call_id, text: textsOf(message.content) }]);
        return;
      case 'function':
        throw invalidRequest(`The 'function' role is deprecated and not supported for this model; use 'tool' messages.`, `${param}.role`);
    }
  });
  return { system, turns };
}

function textsOf(content: string | Array<{ type: 'text'; text: string }>): string[] {
  return typeof content === 'string' ? [content] : content.map((p) => p.text);
}

function userParts(content: Extract<ChatMessage, { role: 'user' }>['content'], param: string): TurnPart[] {
  if (typeof content === 'string') return content.length > 0 ? [{ type: 'text', text: content }] : [];
  const parts: TurnPart[] = [];
  content.forEach((part, j) => {
    if (part.type === 'text') {
      if (part.text.length > 0) parts.push({ type: 'text', text: part.text });
      return;
    }
    const urlParam = `${param}.content[${j}].image_url.url`;
    parts.push({ type: 'image', source: imageSource(part.image_url.url, urlParam), param: urlParam });
  });
  return parts;
}

const DATA_URL = /^data:([^;,]+)((?:;[^;,]*)*),(.*)$/s;

/** An `image_url.url`: an http(s) URL, or a base64 data URL of a type both providers accept. */
export function imageSource(url: string, param: string): ImageSource {
  if (/^https?:\/\//i.test(url)) return { kind: 'url', url };
  const match = DATA_URL.exec(url);
  if (!match) throw invalidRequest(`Invalid image URL in '${param}': expected an http(s) URL or a base64 data URL.`, param);
  const mediaType = match[1].toLowerCase() === 'image/jpg' ? 'image/jpeg' : match[1].toLowerCase();
  if (!(IMAGE_MEDIA_TYPES as readonly string[]).includes(mediaType)) {
    throw invalidRequest(`Unsupported image type '${match[1]}' in '${param}': use ${IMAGE_MEDIA_TYPES.join(', ')}.`, param);
  }
  if (!match[2].split(';').includes('base64')) throw invalidRequest(`The data URL in '${param}' must be base64-encoded.`, param);
  return { kind: 'base64', mediaType: mediaType as ImageMediaType, data: match[3] };
}

/** OpenAI sends tool arguments as a JSON string; these APIs want the object. */
function toolArguments(text: string, param: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidRequest(`'${param}' is not valid JSON.`, param);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidRequest(`'${param}' must be a JSON object.`, param);
  }
  return value as Record<string, unknown>;
}

/** A tool as both APIs describe it. */
export interface ToolSpec {
  name: string;
  description?: string;
  /** JSON Schema of the input; always an object schema. */
  schema: Record<string, unknown>;
}

export type ToolChoicePlan = { type: 'auto' } | { type: 'any' } | { type: 'none' } | { type: 'tool'; name: string };

/**
 * JSON mode on providers without one: a tool whose input schema is the wanted JSON, forced
 * with tool_choice. The tool's input comes back as the message content, never as a tool call.
 */
export interface JsonModeTool extends ToolSpec {
  jsonMode: true;
}

export interface ToolPlan {
  tools: ToolSpec[];
  /** Undefined: the provider's default (auto). */
  choice: ToolChoicePlan | undefined;
  parallel: boolean;
  /** The tool that carries the JSON answer, when response_format asks for JSON. */
  json: JsonModeTool | undefined;
}

export const JSON_OBJECT_TOOL_NAME = 'json_object';

export function planTools(request: ChatCompletionRequest): ToolPlan {
  const tools: ToolSpec[] = (request.tools ?? []).map((t) => ({
    name: t.function.name,
    ...(t.function.description !== undefined ? { description: t.function.description } : {}),
    schema: t.function.parameters ?? { type: 'object', properties: {} },
  }));
  let choice: ToolChoicePlan | undefined;
  const requested = request.tool_choice;
  if (requested === 'none') choice = { type: 'none' };
  else if (requested === 'auto') choice = { type: 'auto' };
  else if (requested === 'required') choice = { type: 'any' };
  else if (requested !== undefined) choice = { type: 'tool', name: requested.function.name };

  const json = jsonModeTool(request);
  if (json) {
    if (tools.some((t) => t.name === json.name)) {
      const param = request.response_format?.type === 'json_schema' ? 'response_format.json_schema.name' : 'response_format';
      throw invalidRequest(`The JSON answer is carried by a tool named '${json.name}', which a tool in 'tools' already uses; rename one.`, param);
    }
    const userTools = tools.length > 0 && choice?.type !== 'none';
    // A named tool choice still wins; otherwise the model must answer through some tool, the JSON one included.
    if (choice?.type !== 'tool') choice = userTools ? { type: 'any' } : { type: 'tool', name: json.name };
    tools.push(json);
  }
  return { tools, choice, parallel: request.parallel_tool_calls !== false, json };
}

function jsonModeTool(request: ChatCompletionRequest): JsonModeTool | undefined {
  const format = request.response_format;
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') {
    return { jsonMode: true, name: JSON_OBJECT_TOOL_NAME, description: 'Give your answer as a JSON object.', schema: { type: 'object' } };
  }
  const schema = format.json_schema.schema ?? { type: 'object' };
  if (schema.type !== 'object') {
    throw invalidRequest(`'response_format.json_schema.schema' must describe a JSON object at its root for this model.`, 'response_format.json_schema.schema');
  }
  return {
    jsonMode: true,
    name: format.json_schema.name,
    description: format.json_schema.description ?? 'Give your answer as JSON matching this schema.',
    schema,
  };
}
