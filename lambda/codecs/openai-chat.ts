// OpenAI Chat Completions ↔ the canonical model, both ways: an endpoint decodes requests and encodes
// answers with it; a provider speaking Chat Completions encodes requests and decodes answers.
import { choicesOf, MAX_CHOICES, type Answer, type AnswerChoice, type AnswerExtensions, type AnswerEvent, type AnswerPart, type ChoiceLogprobs, type FinishReason, type TokenLogprob, type UrlCitation, type Usage } from '../core/answer';
import { commonOptions, type Call, type DecodedRequest, type ReasoningEffort, type ResponseFormat } from '../core/call';
import type { AssistantPart, ImagePart, Prompt, TextPart, Tool, ToolChoice, Turn, UserPart } from '../core/prompt';
import { textOf } from '../core/prompt';
import { DONE_FRAME, type SseFrame, type StreamTerminals } from '../core/sse';
import { invalidRequest, type GatewayError } from '../contract/errors';
import type { ChatCompletion, ChatCompletionChunk, CompletionUsage } from '../contract/openai';
import type { ChatCompletionRequest, ChatMessage } from '../contract/request';
import { usageExtras, withUsageExtras } from '../contract/usage';

/**
 * The provider's thinking on an assistant message (and in stream deltas), as LiteLLM names it:
 * `reasoning_content` is the thinking as text (vLLM, DeepSeek, LiteLLM); `thinking_blocks` are
 * Anthropic's blocks unchanged, signature and redacted data included, so that a client sending the
 * message back gives the provider its own thinking ahead of the tool calls.
 */
export type ThinkingBlock = { type: 'thinking'; thinking: string; signature?: string } | { type: 'redacted_thinking'; data: string };

export interface ThinkingFields {
  reasoning_content?: string;
  thinking_blocks?: ThinkingBlock[];
}

type ChatTool = NonNullable<ChatCompletionRequest['tools']>[number];
type UserContentPart = Exclude<Extract<ChatMessage, { role: 'user' }>['content'], string>[number];
type AssistantMessage = Extract<ChatMessage, { role: 'assistant' }> & ThinkingFields;

/** Top-level request fields the canonical model names; any other is kept as an extension. */
const NAMED_FIELDS = new Set([
  'model', 'messages', 'stream', 'stream_options', 'temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'stop',
  'user', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'reasoning_effort', 'service_tier', 'verbosity',
]);
/** Chat Completions' `reasoning_effort` has no `max` (Anthropic's word): `xhigh` is its highest. */
const CHAT_EFFORT: Partial<Record<ReasoningEffort, ReasoningEffort>> = { max: 'xhigh' };
/** Responses' web-search tool types, current and dated previews: Chat's `web_search_options`. */
const RESPONSES_WEB_SEARCH = /^web_search(_preview)?(_\d{4}_\d{2}_\d{2})?$/;
const VERBOSITY = new Set(['low', 'medium', 'high']);
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const MAX_STOP_SEQUENCES = 4;
/** Chat Completions takes at most this many tools (contract/request.ts; Responses takes more). */
const MAX_TOOLS = 128;
const DATA_URL = /^data:([^;,]+);base64,(.*)$/s;

// ---- requests ---------------------------------------------------------------------------------

/** A validated Chat Completions request (contract/request.ts) → the canonical request. */
export function decodeChatRequest(request: ChatCompletionRequest): DecodedRequest {
  const prompt: Prompt = { system: [], turns: [] };
  for (const message of request.messages) {
    const turn = turnOf(message as ChatMessage & ThinkingFields);
    if (!turn) continue;
    if (turn.role === 'system' && prompt.turns.length === 0) {
      prompt.system.push(...turn.parts);
      continue;
    }
    const last = prompt.turns[prompt.turns.length - 1];
    // Tool messages, and the user message after them, are one user turn (as Anthropic needs them).
    if (turn.role === 'user' && last?.role === 'user' && last.parts.every((p) => p.type === 'tool_result')) (last.parts as UserPart[]).push(...turn.parts);
    else prompt.turns.push(turn);
  }

  const raw = request as Record<string, unknown>;
  const extensions = Object.fromEntries(Object.entries(raw).filter(([k, v]) => !NAMED_FIELDS.has(k) && v !== undefined));
  const effort = raw.reasoning_effort;
  const tier = raw.service_tier;
  const verbosity = raw.verbosity;
  const limit = request.max_completion_tokens ?? request.max_tokens;
  return {
    prompt,
    options: {
      ...commonOptions(request),
      ...(limit != null && { outputLimit: limit }),
      ...(request.stop != null && { stop: typeof request.stop === 'string' ? [request.stop] : request.stop }),
      tools: (request.tools ?? []).map((t): Tool => ({
        kind: 'function',
        name: t.function.name,
        ...(t.function.description !== undefined && { description: t.function.description }),
        parameters: t.function.parameters ?? { type: 'object' },
        ...(t.function.strict != null && { strict: t.function.strict }),
      })),
      ...(request.tool_choice !== undefined && { toolChoice: toolChoiceOf(request.tool_choice) }),
      ...(request.parallel_tool_calls !== undefined && { parallelToolCalls: request.parallel_tool_calls }),
      ...(typeof effort === 'string' && { reasoning: effort === 'none' ? { mode: 'disabled', effort: 'none' } : { mode: 'enabled', effort: effort as ReasoningEffort } }),
      ...(request.response_format && { responseFormat: responseFormatOf(request.response_format) }),
      ...(typeof verbosity === 'string' && VERBOSITY.has(verbosity) && { verbosity: verbosity as 'low' | 'medium' | 'high' }),
      ...(request.user !== undefined && { user: request.user }),
      ...(typeof tier === 'string' && { serviceTier: tier }),
      ...(request.stream_options?.include_usage !== undefined && { includeUsage: request.stream_options.include_usage }),
      ...(Object.keys(extensions).length > 0 && { extensions: { wire: 'openai-chat' as const, fields: extensions } }),
    },
  };
}

function contentTexts(content: string | Array<{ type: string; text?: string; refusal?: string }> | null | undefined): TextPart[] {
  if (content == null) return [];
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  return content.map((p) => ({ type: 'text' as const, text: p.text ?? p.refusal ?? '' }));
}

function turnOf(message: ChatMessage & ThinkingFields): Turn | undefined {
  switch (message.role) {
    case 'system':
    case 'developer':
      return { role: 'system', parts: contentTexts(message.content) };
    case 'user': {
      const parts: UserPart[] = typeof message.content === 'string'
        ? [{ type: 'text', text: message.content }]
        : message.content.map((p): UserPart => (p.type === 'text' ? { type: 'text', text: p.text } : imageOf(p.image_url)));
      return { role: 'user', parts };
    }
    case 'assistant': {
      const parts: AssistantPart[] = reasoningOf(message);
      parts.push(...contentTexts(message.content));
      for (const call of message.tool_calls ?? []) parts.push({ type: 'tool_call', id: call.id, name: call.function.name, arguments: call.function.arguments });
      return parts.length ? { role: 'assistant', parts } : undefined;
    }
    case 'tool':
      return { role: 'user', parts: [{ type: 'tool_result', toolCallId: message.tool_call_id, content: contentTexts(message.content) }] };
    default:
      // Legacy `function` messages: no canonical meaning.
      return undefined;
  }
}

function reasoningOf(fields: ThinkingFields & { reasoning?: unknown }): AssistantPart[] {
  if (fields.thinking_blocks?.length) {
    return fields.thinking_blocks.map((b): AssistantPart =>
      b.type === 'redacted_thinking'
        ? { type: 'reasoning', text: '', redactedData: b.data }
        : { type: 'reasoning', text: b.thinking, ...(b.signature !== undefined && { signature: b.signature }) },
    );
  }
  const text = typeof fields.reasoning_content === 'string' ? fields.reasoning_content : typeof fields.reasoning === 'string' ? fields.reasoning : '';
  return text ? [{ type: 'reasoning', text }] : [];
}

function imageOf(image: { url: string; detail?: 'auto' | 'low' | 'high' }): ImagePart {
  const data = DATA_URL.exec(image.url);
  return {
    type: 'image',
    source: data ? { kind: 'base64', mediaType: data[1], data: data[2] } : { kind: 'url', url: image.url },
    ...(image.detail !== undefined && { detail: image.detail }),
  };
}

function toolChoiceOf(choice: NonNullable<ChatCompletionRequest['tool_choice']>): ToolChoice {
  return typeof choice === 'string' ? { type: choice } : { type: 'tool', name: choice.function.name };
}

function responseFormatOf(format: NonNullable<ChatCompletionRequest['response_format']>): ResponseFormat {
  if (format.type !== 'json_schema') return { type: format.type };
  const s = format.json_schema;
  return {
    type: 'json_schema',
    name: s.name,
    schema: s.schema ?? {},
    ...(s.description !== undefined && { description: s.description }),
    ...(s.strict != null && { strict: s.strict }),
  };
}

export interface ChatRequestEncoding {
  request: ChatCompletionRequest;
  /** The first part a Chat Completions upstream cannot take (thrown only when such a route is tried). */
  unsupported?: GatewayError;
  /** Provider-defined tools the route cannot run: dropped, named in `x-itapi-ignored`. */
  droppedTools: string[];
}

export interface ChatRequestEncodingOptions {
  /** Send assistant thinking back as `reasoning_content` / `thinking_blocks` (only upstreams that read them). @default false */
  thinkingFields?: boolean;
}

/**
 * The canonical call → a Chat Completions request for an upstream. The same mapping as
 * messages/to-chat.ts today (docs/CLIENTS.md has the table): system text joined by blank lines,
 * a user turn's tool results first as `tool` messages, images from tool results in a user message
 * after them, an assistant turn's text joined with its tool calls, provider tools dropped.
 */
export function encodeChatRequest(call: Call, options: ChatRequestEncodingOptions = {}): ChatRequestEncoding {
  let unsupported: GatewayError | undefined;
  const refuse = (param: string, why: string) => {
    unsupported ??= invalidRequest(`${param}: ${why} The route serving this model speaks Chat Completions.`, param, 'unsupported_parameter');
  };
  const { prompt, settings } = call;
  const messages: ChatMessage[] = [];
  const system = textOf(prompt.system, '\n\n');
  if (system) messages.push({ role: 'system', content: system });
  prompt.turns.forEach((turn, i) => messages.push(...chatMessages(turn, `messages[${i}]`, refuse, options)));
  if (messages.length === 0) {
    refuse('messages', prompt.turns.length ? 'There is nothing to send once thinking is left out.' : 'The messages carry no text, image or tool call to send.');
  }

  const request: ChatCompletionRequest = { model: settings.model, messages, max_completion_tokens: settings.maxOutputTokens };
  if (settings.stream) request.stream = true;
  if (settings.stream && settings.includeUsage !== undefined) request.stream_options = { include_usage: settings.includeUsage };
  if (settings.temperature !== undefined) request.temperature = settings.temperature;
  if (settings.topP !== undefined) request.top_p = settings.topP;
  if (settings.stop?.length) {
    if (settings.stop.length > MAX_STOP_SEQUENCES) refuse('stop_sequences', `At most ${MAX_STOP_SEQUENCES} stop sequences are supported here.`);
    else request.stop = settings.stop;
  }

  const droppedTools: string[] = [];
  const tools: ChatTool[] = [];
  settings.tools.forEach((tool, i) => {
    if (tool.kind === 'provider' && tool.wire === 'openai-responses' && RESPONSES_WEB_SEARCH.test(tool.type)) {
      // Kept by the Responses decoder only where the model prices web search; billed per request.
      const size = tool.fields.search_context_size;
      (request as Record<string, unknown>).web_search_options = typeof size === 'string' ? { search_context_size: size } : {};
      return;
    }
    if (tool.kind === 'provider') {
      droppedTools.push(tool.name ?? tool.type);
      return;
    }
    if (!FUNCTION_NAME.test(tool.name)) {
      refuse(`tools[${i}].name`, 'Tool names must be 1-64 characters of a-z, A-Z, 0-9, _ and - here.');
      return;
    }
    tools.push({
      type: 'function',
      function: namedSchema(tool, 'parameters', tool.parameters),
    });
  });
  if (tools.length > MAX_TOOLS) refuse('tools', `At most ${MAX_TOOLS} tools are supported here.`);
  if (tools.length) request.tools = tools;

  const choice = settings.toolChoice;
  if (choice && tools.length) {
    if (choice.type !== 'tool') request.tool_choice = choice.type;
    else if (tools.some((t) => t.function.name === choice.name)) request.tool_choice = { type: 'function', function: { name: choice.name } };
  }
  if (settings.parallelToolCalls === false && tools.length && choice?.type !== 'none') request.parallel_tool_calls = false;
  if ((choice?.type === 'required' || choice?.type === 'tool') && request.tool_choice === undefined) {
    const named = choice.type === 'tool' ? `'${choice.name}'` : 'a tool';
    refuse('tool_choice', `It forces ${named}, which the route cannot run${droppedTools.length ? ` (dropped: ${droppedTools.join(', ')})` : ''}.`);
  }

  const format = settings.responseFormat;
  if (format) {
    request.response_format = format.type !== 'json_schema'
      ? { type: format.type }
      : {
          type: 'json_schema',
          json_schema: namedSchema(format, 'schema', format.schema),
        };
  }
  const raw = request as Record<string, unknown>;
  if (settings.reasoning?.effort && (settings.reasoning.mode !== 'disabled' || settings.reasoning.effort === 'none')) raw.reasoning_effort = CHAT_EFFORT[settings.reasoning.effort] ?? settings.reasoning.effort;
  if (settings.verbosity !== undefined) raw.verbosity = settings.verbosity;
  if (settings.user !== undefined) request.user = settings.user;
  if (settings.serviceTier !== undefined) raw.service_tier = settings.serviceTier;
  if (settings.logprobs) {
    raw.logprobs = true;
    if (settings.logprobs.topLogprobs !== undefined) raw.top_logprobs = settings.logprobs.topLogprobs;
  }
  if (settings.extensions?.wire === 'openai-chat') Object.assign(raw, settings.extensions.fields);
  return { request, unsupported, droppedTools };
}

type Refuse = (param: string, why: string) => void;

function chatMessages(turn: Turn, param: string, refuse: Refuse, options: ChatRequestEncodingOptions): ChatMessage[] {
  if (turn.role === 'system') return [{ role: 'system', content: textOf(turn.parts, '\n\n') }];
  if (turn.role === 'assistant') {
    turn.parts.forEach((part, j) => {
      // Server-tool calls and results are the provider's own turns: a translated route never made them.
      if (part.type === 'opaque' && !/^(server_tool_use|.*_tool_result)$/.test(part.kind)) refuse(`${param}.content[${j}]`, `Assistant blocks of type '${part.kind}' are not supported here.`);
    });
    const text = textOf(turn.parts);
    const calls = turn.parts.flatMap((p) => (p.type === 'tool_call' ? [{ id: p.id, type: 'function' as const, function: { name: p.name, arguments: p.arguments } }] : []));
    const thinking = options.thinkingFields ? thinkingFieldsOf(turn.parts) : {};
    if (!text && calls.length === 0 && !thinking.thinking_blocks) return [];
    const message: AssistantMessage = { role: 'assistant', content: text || null, ...(calls.length && { tool_calls: calls }), ...thinking };
    return [message];
  }
  const toolMessages: ChatMessage[] = [];
  const toolImages: UserContentPart[] = [];
  const parts: UserContentPart[] = [];
  turn.parts.forEach((part, j) => {
    const at = `${param}.content[${j}]`;
    switch (part.type) {
      case 'text':
        parts.push({ type: 'text', text: part.text });
        return;
      case 'image': {
        const image = imagePartOf(part, at, refuse);
        if (image) parts.push(image);
        return;
      }
      case 'document':
        refuse(at, 'Documents are not supported here.');
        return;
      case 'opaque':
        refuse(at, `Blocks of type '${part.kind}' are not supported here.`);
        return;
      case 'tool_result': {
        const texts: string[] = [];
        part.content.forEach((inner, k) => {
          if (inner.type === 'text') texts.push(inner.text);
          else if (inner.type === 'image') {
            const image = imagePartOf(inner, `${at}.content[${k}]`, refuse);
            if (image) toolImages.push(image);
          } else refuse(`${at}.content[${k}]`, `Tool results holding '${inner.type}' blocks are not supported here.`);
        });
        const text = texts.join('\n');
        toolMessages.push({ role: 'tool', tool_call_id: part.toolCallId, content: part.isError ? `Error: ${text}` : text });
        return;
      }
    }
  });
  const out = [...toolMessages];
  if (toolImages.length) out.push({ role: 'user', content: [{ type: 'text', text: 'Images returned by the tool:' }, ...toolImages] });
  // One plain text is sent as a string, as most clients write it.
  if (parts.length === 1 && parts[0].type === 'text') out.push({ role: 'user', content: parts[0].text });
  else if (parts.length) out.push({ role: 'user', content: parts });
  return out;
}

function imagePartOf(part: ImagePart, param: string, refuse: Refuse): UserContentPart | undefined {
  const source = part.source;
  const detail = part.detail !== undefined ? { detail: part.detail } : {};
  if (source.kind === 'base64') return { type: 'image_url', image_url: { url: `data:${source.mediaType};base64,${source.data}`, ...detail } };
  if (source.kind === 'url') return { type: 'image_url', image_url: { url: source.url, ...detail } };
  refuse(`${param}.source`, "Images from a provider's Files API are not supported here; send base64 or a URL.");
  return undefined;
}

function thinkingFieldsOf(parts: ReadonlyArray<AssistantPart | AnswerPart>): ThinkingFields {
  const reasoning = parts.filter((p): p is Extract<AssistantPart, { type: 'reasoning' }> => p.type === 'reasoning');
  if (reasoning.length === 0) return {};
  return {
    reasoning_content: reasoning.map((p) => p.text).join(''),
    thinking_blocks: reasoning.map((p): ThinkingBlock =>
      p.redactedData !== undefined
        ? { type: 'redacted_thinking', data: p.redactedData }
        : { type: 'thinking', thinking: p.text, ...(p.signature !== undefined && { signature: p.signature }) },
    ),
  };
}

// ---- answers ----------------------------------------------------------------------------------

/** OpenAI's service tiers; another provider's (Anthropic's `standard`) is written as `default`. */
const CHAT_SERVICE_TIERS = new Set(['auto', 'default', 'flex', 'scale', 'priority']);

function chatServiceTier(tier: string): ChatCompletion['service_tier'] {
  return (CHAT_SERVICE_TIERS.has(tier) ? tier : 'default') as ChatCompletion['service_tier'];
}

/** `tool_calls` only when a tool was called (a JSON-mode tool, or Anthropic's server tools, end with `stop`). */
export function chatFinishReason(reason: FinishReason, calledTools = true): NonNullable<ChatCompletion.Choice['finish_reason']> {
  switch (reason) {
    case 'length':
      return 'length';
    case 'tool_calls':
      return calledTools ? 'tool_calls' : 'stop';
    case 'refusal':
      return 'content_filter';
    default:
      // stop_sequence and pause have no word of their own in OpenAI's.
      return 'stop';
  }
}

/** OpenAI's finish reasons that are not `stop` (a Map: an unknown word such as `constructor` is no key). */
const FINISH_OF_CHAT = new Map<string, FinishReason>([
  ['length', 'length'],
  ['tool_calls', 'tool_calls'],
  ['function_call', 'tool_calls'],
  ['content_filter', 'refusal'],
]);

export function finishReasonOfChat(reason: string | null | undefined): FinishReason {
  return FINISH_OF_CHAT.get(reason ?? '') ?? 'stop';
}

/**
 * Canonical usage → OpenAI's: cache reads and writes are prompt tokens; the reads are
 * `cached_tokens`. What OpenAI has no field for (writes by lifetime, server-tool calls, the tier)
 * rides along as the usage extras settlement reads today (contract/usage.ts), never serialised.
 */
export function chatUsage(usage: Usage): CompletionUsage {
  const prompt = usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens + usage.cacheWrite1hTokens;
  const wire: CompletionUsage = {
    prompt_tokens: prompt,
    completion_tokens: usage.outputTokens,
    total_tokens: prompt + usage.outputTokens,
    prompt_tokens_details: { cached_tokens: usage.cacheReadTokens },
    ...(usage.reasoningTokens !== undefined && { completion_tokens_details: { reasoning_tokens: usage.reasoningTokens } }),
  };
  return withUsageExtras(wire, {
    cacheWriteTokens: usage.cacheWriteTokens,
    cacheWrite1hTokens: usage.cacheWrite1hTokens,
    ...(usage.serverToolCalls && { serverToolCalls: usage.serverToolCalls }),
    ...(usage.serviceTier !== undefined && { serviceTier: usage.serviceTier }),
  });
}

/** OpenAI's usage → canonical; cache writes and server-tool calls only from the extras a provider attached (OpenAI reports none). */
export function usageOfChat(usage: CompletionUsage, serviceTier?: string | null): Usage {
  const extras = usageExtras(usage);
  const writes = (extras.cacheWriteTokens ?? 0) + (extras.cacheWrite1hTokens ?? 0);
  const cached = Math.min(usage.prompt_tokens_details?.cached_tokens ?? 0, usage.prompt_tokens - writes);
  const reasoning = usage.completion_tokens_details?.reasoning_tokens;
  const tier = extras.serviceTier ?? serviceTier;
  return {
    inputTokens: usage.prompt_tokens - cached - writes,
    cacheReadTokens: cached,
    cacheWriteTokens: extras.cacheWriteTokens ?? 0,
    cacheWrite1hTokens: extras.cacheWrite1hTokens ?? 0,
    outputTokens: usage.completion_tokens,
    ...(reasoning != null && { reasoningTokens: reasoning }),
    ...(extras.serverToolCalls && { serverToolCalls: extras.serverToolCalls }),
    ...(tier != null && { serviceTier: tier }),
  };
}

export type ChatCompletionWithThinking = ChatCompletion & { choices: Array<ChatCompletion.Choice & { message: ThinkingFields }> };

type ChatAnnotation = NonNullable<ChatCompletion.Choice['message']['annotations']>[number];
type ChatLogprobs = NonNullable<ChatCompletion.Choice['logprobs']>;

/** Top-level fields of a ChatCompletion the canonical answer names; any other is kept as an extension. */
const NAMED_COMPLETION_FIELDS = new Set(['id', 'object', 'created', 'model', 'choices', 'usage', 'service_tier', 'system_fingerprint']);
/** Message fields the canonical answer names (thinking's included); any other (`function_call`, a provider's own) is kept as an extension. */
const NAMED_MESSAGE_FIELDS = new Set(['role', 'content', 'refusal', 'tool_calls', 'annotations', 'reasoning_content', 'reasoning', 'thinking_blocks']);

/** The fields of `object` not in `named`, as a Chat-wire extension (undefined when there are none). */
function chatExtensions(object: object, named: ReadonlySet<string>): AnswerExtensions | undefined {
  const fields = Object.fromEntries(Object.entries(object).filter(([k, v]) => !named.has(k) && v !== undefined));
  return Object.keys(fields).length > 0 ? { wire: 'openai-chat', fields } : undefined;
}

/** A Chat-wire extension's fields, for the Chat codec only. */
function chatFieldsOf(extensions: AnswerExtensions | undefined): Record<string, unknown> {
  return extensions?.wire === 'openai-chat' ? extensions.fields : {};
}

/** A whole answer → a ChatCompletion: one choice per answer choice (`n > 1`), thinking in the message's extension fields. */
export function encodeChatCompletion(answer: Answer): ChatCompletionWithThinking {
  return {
    ...chatFieldsOf(answer.answerExtensions),
    id: answer.id,
    object: 'chat.completion',
    created: answer.createdS,
    model: answer.model,
    choices: choicesOf(answer).map((choice, index) => chatChoice(choice, index)),
    ...(answer.usage && { usage: chatUsage(answer.usage) }),
    ...(answer.usage?.serviceTier !== undefined && { service_tier: chatServiceTier(answer.usage.serviceTier) }),
    ...(answer.systemFingerprint !== undefined && { system_fingerprint: answer.systemFingerprint }),
  };
}

function chatChoice(choice: AnswerChoice, index: number): ChatCompletionWithThinking['choices'][number] {
  const text = choice.parts.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
  const refusal = choice.parts.flatMap((p) => (p.type === 'refusal' ? [p.text] : [])).join('');
  const calls = choice.parts.flatMap((p) => (p.type === 'tool_call' ? [{ id: p.id, type: 'function' as const, function: { name: p.name, arguments: p.arguments } }] : []));
  const extra = chatFieldsOf(choice.extensions);
  // A legacy `functions` client's call (passed through as it came): its own finish word.
  const legacyCall = extra.function_call != null && calls.length === 0 && choice.finishReason === 'tool_calls';
  return {
    index,
    message: {
      ...extra,
      role: 'assistant',
      content: text.length > 0 || (calls.length === 0 && !legacyCall) ? text : null,
      refusal: refusal || null,
      ...(calls.length > 0 && { tool_calls: calls }),
      ...(choice.annotations?.length && { annotations: choice.annotations.map(chatAnnotation) }),
      ...thinkingFieldsOf(choice.parts),
    },
    finish_reason: legacyCall ? 'function_call' : chatFinishReason(choice.finishReason, calls.length > 0),
    logprobs: choice.logprobs ? chatLogprobs(choice.logprobs) : null,
  };
}

function chatLogprobs(logprobs: ChoiceLogprobs): ChatLogprobs {
  return { content: logprobs.content, refusal: logprobs.refusal };
}

function chatAnnotation(a: UrlCitation): ChatAnnotation {
  return { type: 'url_citation', url_citation: { url: a.url, title: a.title, start_index: a.startIndex, end_index: a.endIndex } };
}

/** OpenAI's annotations that the canonical model names (URL citations); another kind is left out. */
function annotationsOfChat(annotations: unknown): UrlCitation[] {
  if (!Array.isArray(annotations)) return [];
  return annotations.flatMap((a: Partial<ChatAnnotation> | null): UrlCitation[] => {
    const c = a?.type === 'url_citation' ? a.url_citation : undefined;
    if (!c || typeof c.url !== 'string') return [];
    return [{ type: 'url_citation', url: c.url, title: typeof c.title === 'string' ? c.title : '', startIndex: Number(c.start_index) || 0, endIndex: Number(c.end_index) || 0 }];
  });
}

/** OpenAI's per-choice `logprobs` as sent: `null` (not asked), or `{content, refusal}`, each a list or null. */
function logprobsOfChat(logprobs: unknown): ChoiceLogprobs | undefined {
  if (logprobs === null || typeof logprobs !== 'object' || Array.isArray(logprobs)) return undefined;
  const { content, refusal } = logprobs as { content?: unknown; refusal?: unknown };
  const list = (v: unknown) => (Array.isArray(v) ? (v as TokenLogprob[]) : null);
  return { content: list(content), refusal: list(refusal) };
}

/** A ChatCompletion → a whole answer, every choice in index order: thinking first, then text, refusal, tool calls. */
export function decodeChatCompletion(completion: ChatCompletion): Answer {
  const byIndex = [...completion.choices].sort((a, b) => (a?.index ?? 0) - (b?.index ?? 0));
  const [first = { parts: [], finishReason: 'stop' as const }, ...others] = byIndex.map(choiceOfChat);
  const fingerprint = (completion as { system_fingerprint?: unknown }).system_fingerprint;
  const extensions = chatExtensions(completion, NAMED_COMPLETION_FIELDS);
  return {
    id: completion.id,
    model: completion.model,
    createdS: completion.created,
    ...first,
    ...(typeof fingerprint === 'string' && { systemFingerprint: fingerprint }),
    ...(others.length > 0 && { otherChoices: others }),
    ...(extensions && { answerExtensions: extensions }),
    ...(completion.usage && { usage: usageOfChat(completion.usage, completion.service_tier) }),
  };
}

function choiceOfChat(choice: ChatCompletion.Choice | undefined): AnswerChoice {
  const message = (choice?.message ?? {}) as ChatCompletion.Choice['message'] & ThinkingFields & { reasoning?: unknown };
  const parts: AnswerPart[] = reasoningOf(message) as AnswerPart[];
  if (message.content) parts.push({ type: 'text', text: message.content });
  if (message.refusal) parts.push({ type: 'refusal', text: message.refusal });
  for (const call of message.tool_calls ?? []) {
    if (call.type === 'function') parts.push({ type: 'tool_call', id: call.id, name: call.function.name, arguments: call.function.arguments });
  }
  const logprobs = logprobsOfChat(choice?.logprobs);
  const annotations = annotationsOfChat(message.annotations);
  const extensions = chatExtensions(message, NAMED_MESSAGE_FIELDS);
  return {
    parts,
    finishReason: finishReasonOfChat(choice?.finish_reason),
    ...(logprobs && { logprobs }),
    ...(annotations.length > 0 && { annotations }),
    ...(extensions && { extensions }),
  };
}

type ChunkDelta = ChatCompletionChunk.Choice.Delta & ThinkingFields & { annotations?: unknown };

/** What the chunk encoder keeps per choice. */
interface EncodedChoice {
  roleSent: boolean;
  readonly toolIndex: Map<number, number>;
}

/**
 * Answer events → Chat Completions chunks, in the order clients rely on: `role` in the first
 * delta of each choice, each tool call with its own index (0, 1, … within its choice) and its id
 * and name in its first chunk, one finish chunk per choice, then usage in a chunk without choices.
 * Every chunk carries the `system_fingerprint` the provider gave, as OpenAI's do.
 */
export class ChatChunkEncoder {
  private id = '';
  private model = '';
  private createdS = 0;
  private systemFingerprint: string | undefined;
  private usage: Usage | undefined;
  private readonly choices = new Map<number, EncodedChoice>();

  constructor(private readonly options: { includeUsage?: boolean } = {}) {}

  /** Log probabilities held for the text event that follows them (a decoded chunk gives them first), so both go in one chunk as OpenAI sends them. */
  private pendingLogprobs: { choice: number; logprobs: ChatLogprobs } | undefined;

  push(event: AnswerEvent): ChatCompletionChunk[] {
    if (event.type === 'logprobs') {
      const flushed = this.flushLogprobs();
      this.pendingLogprobs = { choice: event.choice ?? 0, logprobs: { content: event.content ?? null, refusal: event.refusal ?? null } };
      return flushed;
    }
    const pending = this.pendingLogprobs;
    if (pending && (event.type === 'text' || event.type === 'refusal') && event.text && (event.choice ?? 0) === pending.choice) {
      this.pendingLogprobs = undefined;
      return this.encode(event, pending.logprobs);
    }
    return [...this.flushLogprobs(), ...this.encode(event)];
  }

  private flushLogprobs(): ChatCompletionChunk[] {
    const pending = this.pendingLogprobs;
    this.pendingLogprobs = undefined;
    return pending ? [this.choice(pending.choice, {}, null, pending.logprobs)] : [];
  }

  private encode(event: Exclude<AnswerEvent, { type: 'logprobs' }>, logprobs: ChatLogprobs | null = null): ChatCompletionChunk[] {
    if (event.type === 'start') {
      this.id = event.id;
      this.model = event.model;
      this.createdS = event.createdS ?? Math.floor(Date.now() / 1000);
      this.systemFingerprint = event.systemFingerprint;
      return [this.choice(0, { content: '' }, null)];
    }
    if (event.type === 'usage') {
      // Usage may come more than once (Anthropic reports it at the start and the end): the last is sent by `end`.
      this.usage = event.usage;
      return [];
    }
    const c = event.choice ?? 0;
    switch (event.type) {
      case 'text':
        return event.text ? [this.choice(c, { content: event.text }, null, logprobs)] : [];
      case 'refusal':
        return event.text ? [this.choice(c, { refusal: event.text }, null, logprobs)] : [];
      case 'reasoning':
        return event.text ? [this.choice(c, { reasoning_content: event.text }, null)] : [];
      case 'reasoning_signature':
        return [this.choice(c, { thinking_blocks: [{ type: 'thinking', thinking: '', signature: event.signature }] }, null)];
      case 'reasoning_redacted':
        return [this.choice(c, { thinking_blocks: [{ type: 'redacted_thinking', data: event.data }] }, null)];
      case 'reasoning_encrypted':
        // OpenAI's encrypted reasoning has no Chat Completions field.
        return [];
      case 'tool_call_start': {
        const tools = this.state(c).toolIndex;
        const index = tools.size;
        tools.set(event.index, index);
        return [this.choice(c, { tool_calls: [{ index, id: event.id, type: 'function', function: { name: event.name, arguments: '' } }] }, null)];
      }
      case 'tool_call_delta': {
        const index = this.state(c).toolIndex.get(event.index);
        if (index === undefined) throw new Error(`Arguments for answer part ${event.index}, which is no tool call.`);
        return event.arguments ? [this.choice(c, { tool_calls: [{ index, function: { arguments: event.arguments } }] }, null)] : [];
      }
      case 'annotation':
        return [this.choice(c, { annotations: [chatAnnotation(event.annotation)] }, null)];
      case 'finish':
        return [this.choice(c, {}, chatFinishReason(event.reason, this.state(c).toolIndex.size > 0))];
    }
  }

  /** After the last answer event: the usage chunk (without choices), unless the client asked for none. */
  end(): ChatCompletionChunk[] {
    const flushed = this.flushLogprobs();
    if (!this.usage || this.options.includeUsage === false) return flushed;
    return [...flushed, {
      ...this.head(),
      choices: [],
      usage: chatUsage(this.usage),
      ...(this.usage.serviceTier !== undefined && { service_tier: chatServiceTier(this.usage.serviceTier) }),
    }];
  }

  private state(index: number): EncodedChoice {
    let state = this.choices.get(index);
    if (!state) this.choices.set(index, (state = { roleSent: false, toolIndex: new Map() }));
    return state;
  }

  private choice(index: number, delta: ChunkDelta, finishReason: ChatCompletionChunk.Choice['finish_reason'], logprobs: ChatLogprobs | null = null): ChatCompletionChunk {
    const state = this.state(index);
    const first = state.roleSent ? {} : { role: 'assistant' as const };
    state.roleSent = true;
    return { ...this.head(), choices: [{ index, delta: { ...first, ...delta } as ChatCompletionChunk.Choice.Delta, finish_reason: finishReason, logprobs }] };
  }

  /** What every chunk of the answer begins with. */
  private head(): Pick<ChatCompletionChunk, 'id' | 'object' | 'created' | 'model' | 'system_fingerprint'> {
    return { id: this.id, object: 'chat.completion.chunk', created: this.createdS, model: this.model, ...(this.systemFingerprint !== undefined && { system_fingerprint: this.systemFingerprint }) };
  }
}

/** What the chunk decoder keeps per choice. */
interface DecodedChoice {
  nextIndex: number;
  open: { kind: 'text' | 'refusal' | 'reasoning'; index: number } | undefined;
  readonly toolParts: Map<number, number>;
}

/** Chat Completions chunks → answer events, every choice (`choice` on those after the first); each new kind of content opens a new part. */
export class ChatChunkDecoder {
  private started = false;
  private readonly choices = new Map<number, DecodedChoice>();

  push(chunk: ChatCompletionChunk): AnswerEvent[] {
    const events: AnswerEvent[] = [];
    if (!this.started) {
      this.started = true;
      const fingerprint = (chunk as { system_fingerprint?: unknown }).system_fingerprint;
      events.push({ type: 'start', id: chunk.id, model: chunk.model, createdS: chunk.created, ...(typeof fingerprint === 'string' && { systemFingerprint: fingerprint }) });
    }
    for (const choice of chunk.choices) {
      const c = choice.index ?? 0;
      if (!Number.isInteger(c) || c < 0 || c >= MAX_CHOICES) continue;
      const state = this.state(c);
      const at = c > 0 ? { choice: c } : {};
      const partFor = (kind: 'text' | 'refusal' | 'reasoning'): number => {
        if (state.open?.kind === kind) return state.open.index;
        state.open = { kind, index: state.nextIndex++ };
        return state.open.index;
      };
      const delta = (choice.delta ?? {}) as ChunkDelta & { reasoning?: unknown };
      const reasoning = typeof delta.reasoning_content === 'string' ? delta.reasoning_content : typeof delta.reasoning === 'string' ? delta.reasoning : '';
      if (reasoning) events.push({ type: 'reasoning', index: partFor('reasoning'), text: reasoning, ...at });
      for (const block of delta.thinking_blocks ?? []) {
        if (block.type === 'redacted_thinking') {
          state.open = undefined;
          events.push({ type: 'reasoning_redacted', index: state.nextIndex++, data: block.data, ...at });
          continue;
        }
        if (block.thinking && !reasoning) events.push({ type: 'reasoning', index: partFor('reasoning'), text: block.thinking, ...at });
        if (block.signature !== undefined) {
          events.push({ type: 'reasoning_signature', index: partFor('reasoning'), signature: block.signature, ...at });
          state.open = undefined; // a signature closes its block
        }
      }
      // A chunk's logprobs are the tokens it carries (given before them, so an encoder writes both in one chunk); one without any adds nothing.
      const logprobs = logprobsOfChat(choice.logprobs);
      if (logprobs && (logprobs.content || logprobs.refusal)) events.push({ type: 'logprobs', ...(logprobs.content && { content: logprobs.content }), ...(logprobs.refusal && { refusal: logprobs.refusal }), ...at });
      if (delta.content) events.push({ type: 'text', index: partFor('text'), text: delta.content, ...at });
      if (delta.refusal) events.push({ type: 'refusal', index: partFor('refusal'), text: delta.refusal, ...at });
      for (const call of delta.tool_calls ?? []) {
        let index = state.toolParts.get(call.index);
        if (index === undefined) {
          state.open = undefined;
          index = state.nextIndex++;
          state.toolParts.set(call.index, index);
          events.push({ type: 'tool_call_start', index, id: call.id ?? '', name: call.function?.name ?? '', ...at });
        }
        if (call.function?.arguments) events.push({ type: 'tool_call_delta', index, arguments: call.function.arguments, ...at });
      }
      for (const annotation of annotationsOfChat(delta.annotations)) events.push({ type: 'annotation', annotation, ...at });
      if (choice.finish_reason) events.push({ type: 'finish', reason: finishReasonOfChat(choice.finish_reason), ...at });
    }
    if (chunk.usage) events.push({ type: 'usage', usage: usageOfChat(chunk.usage, chunk.service_tier) });
    return events;
  }

  private state(index: number): DecodedChoice {
    let state = this.choices.get(index);
    if (!state) this.choices.set(index, (state = { nextIndex: 0, open: undefined, toolParts: new Map() }));
    return state;
  }
}

/** Chat's stream ends with `[DONE]`; a failure after the first byte is an error event, then `[DONE]`. */
export const chatStreamTerminals: StreamTerminals = {
  ended: (): SseFrame[] => [DONE_FRAME],
  failed: (error): SseFrame[] => [{ data: { error: { message: error.message, type: error.type, param: error.param, code: error.code } } }, DONE_FRAME],
};

/** The frames of a chunk: Chat names no events. */
export function chatFrame(chunk: ChatCompletionChunk): SseFrame {
  return { data: chunk };
}

/**
 * A named schema as OpenAI's Chat wire spells both a function tool and a `json_schema` format:
 * `name`, `description` if given, the schema under its key, `strict` if given (in that order).
 */
function namedSchema<K extends 'parameters' | 'schema', S>(
  entry: { name: string; description?: string; strict?: boolean },
  key: K,
  schema: S,
): { name: string; description?: string; strict?: boolean } & Record<K, S> {
  return {
    name: entry.name,
    ...(entry.description !== undefined && { description: entry.description }),
    [key]: schema,
    ...(entry.strict !== undefined && { strict: entry.strict }),
  } as { name: string; description?: string; strict?: boolean } & Record<K, S>;
}
