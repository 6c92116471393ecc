// Anthropic Messages ↔ the canonical model, both ways: `/v1/messages` decodes requests and encodes
// answers with it; the Anthropic provider encodes requests and decodes answers with it.
import type {
  ContentBlockParam,
  ImageBlockParam,
  DocumentBlockParam,
  MessageCreateParamsBase,
  MessageParam,
  RawMessageStreamEvent,
  StopReason,
  TextBlockParam,
  ToolChoice as AnthropicToolChoice,
  ToolUnion,
} from '@anthropic-ai/sdk/resources/messages';
import { StreamErrorEvent, type Answer, type AnswerEvent, type AnswerPart, type FinishReason, type Usage, ZERO_USAGE } from '../core/answer';
import { commonOptions, type Call, type DecodedRequest, type ReasoningEffort, type ReasoningRequest } from '../core/call';
import type { AssistantPart, CacheMark, DocumentPart, ImagePart, Prompt, TextPart, Tool, ToolChoice, Turn, UserPart } from '../core/prompt';
import type { SseFrame, StreamError, StreamTerminals } from '../core/sse';
import { upstreamError } from '../contract/errors';

/** `role: "system"` mid-conversation is Claude Code's (beta `mid-conversation-system-2026-04-07`). */
export type MessagesWireMessage = MessageParam | { role: 'system'; content: string | TextBlockParam[] };

/** The sampling fields older models take (the SDK's current types no longer list them). */
interface SamplingFields {
  temperature?: number;
  top_p?: number;
  top_k?: number;
}

type MessagesFields = Omit<MessageCreateParamsBase, 'messages'> & SamplingFields & { messages: MessagesWireMessage[] };

/** A Messages request as clients send it: the SDK's fields, beta fields kept as sent. */
export type MessagesWireRequest = MessagesFields & { [field: string]: unknown };

/** A Messages prompt without an output limit (`count_tokens`): the SDK's fields, beta fields kept as sent. */
export type MessagesWirePrompt = Omit<MessagesFields, 'max_tokens'> & { max_tokens?: number; [field: string]: unknown };

/** Fields the canonical model names; any other top-level field is kept as an extension. */
const NAMED_FIELDS = new Set([
  'model', 'messages', 'system', 'max_tokens', 'stream', 'temperature', 'top_p', 'top_k', 'stop_sequences', 'tools', 'tool_choice',
  'thinking', 'output_config', 'service_tier',
]);
/** `reasoning_effort` as a thinking budget (when the client gave an effort, not a budget), within max_tokens. */
const THINKING_BUDGET: Partial<Record<ReasoningEffort, number>> = { minimal: 1_024, low: 1_024, medium: 4_096, high: 16_384, xhigh: 32_000, max: 32_000 };
const MIN_THINKING_BUDGET = 1_024;
const SERVER_TOOL_USAGE: Record<string, string> = { web_search_requests: 'web_search', web_fetch_requests: 'web_fetch', code_execution_requests: 'code_execution' };

// ---- requests ---------------------------------------------------------------------------------

export function decodeMessagesRequest(wire: MessagesWireRequest): DecodedRequest {
  const request = wire as MessagesFields;
  const prompt: Prompt = { system: systemParts(request.system), turns: request.messages.map(turnOf) };
  const extensions: Record<string, unknown> = Object.fromEntries(Object.entries(request).filter(([k, v]) => !NAMED_FIELDS.has(k) && v !== undefined));
  const { effort, format, ...outputRest } = (request.output_config ?? {}) as { effort?: string | null; format?: { type: string; schema?: Record<string, unknown> } | null; [k: string]: unknown };
  if (Object.keys(outputRest).length) extensions.output_config = outputRest;
  const reasoning = reasoningOf(request.thinking, effort ?? undefined);
  const tier = request.service_tier;
  return {
    prompt,
    options: {
      outputLimit: request.max_tokens,
      ...commonOptions(request),
      ...(request.top_k != null && { topK: request.top_k }),
      ...(request.stop_sequences?.length && { stop: request.stop_sequences }),
      tools: (request.tools ?? []).map(toolOf),
      ...(request.tool_choice && { toolChoice: toolChoiceOf(request.tool_choice) }),
      ...(request.tool_choice && 'disable_parallel_tool_use' in request.tool_choice && request.tool_choice.disable_parallel_tool_use && { parallelToolCalls: false }),
      ...(reasoning && { reasoning }),
      ...(format?.type === 'json_schema' && { responseFormat: { type: 'json_schema' as const, name: 'output', schema: format.schema ?? {} } }),
      ...(typeof tier === 'string' && { serviceTier: tier }),
      ...(Object.keys(extensions).length > 0 && { extensions: { wire: 'anthropic-messages' as const, fields: extensions } }),
    },
  };
}

function cacheOf(block: { cache_control?: { type: string; ttl?: string } | null }): { cache?: CacheMark } {
  const mark = block.cache_control;
  if (!mark) return {};
  return { cache: mark.ttl === '1h' || mark.ttl === '5m' ? { ttl: mark.ttl } : {} };
}

function systemParts(system: MessageCreateParamsBase['system']): TextPart[] {
  if (system === undefined) return [];
  if (typeof system === 'string') return system ? [{ type: 'text', text: system }] : [];
  return system.map((b) => ({ type: 'text', text: b.text, ...cacheOf(b) }));
}

function turnOf(message: MessagesWireMessage): Turn {
  if (message.role === 'system') {
    const parts = typeof message.content === 'string'
      ? [{ type: 'text' as const, text: message.content }]
      : message.content.filter((b) => b.type === 'text').map((b) => ({ type: 'text' as const, text: b.text, ...cacheOf(b) }));
    return { role: 'system', parts };
  }
  const blocks: ContentBlockParam[] = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
  if (message.role === 'assistant') return { role: 'assistant', parts: blocks.flatMap(assistantPart) };
  return { role: 'user', parts: blocks.flatMap(userPart) };
}

function assistantPart(block: ContentBlockParam): AssistantPart[] {
  switch (block.type) {
    case 'text':
      return [{ type: 'text', text: block.text, ...cacheOf(block) }];
    case 'thinking':
      return [{ type: 'reasoning', text: block.thinking, signature: block.signature }];
    case 'redacted_thinking':
      return [{ type: 'reasoning', text: '', redactedData: block.data }];
    case 'tool_use':
      return [{ type: 'tool_call', id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) }];
    default:
      return [{ type: 'opaque', wire: 'anthropic-messages', kind: block.type, value: block as unknown as Record<string, unknown> }];
  }
}

function userPart(block: ContentBlockParam): UserPart[] {
  switch (block.type) {
    case 'text':
      return [{ type: 'text', text: block.text, ...cacheOf(block) }];
    case 'image':
      return [imageOf(block)];
    case 'document':
      return [documentOf(block)];
    case 'tool_result': {
      const content = typeof block.content === 'string'
        ? [{ type: 'text' as const, text: block.content }]
        : (block.content ?? []).flatMap((inner): Array<TextPart | ImagePart | DocumentPart> => {
            if (inner.type === 'text') return [{ type: 'text', text: inner.text, ...cacheOf(inner) }];
            if (inner.type === 'image') return [imageOf(inner)];
            if (inner.type === 'document') return [documentOf(inner)];
            return [];
          });
      return [{ type: 'tool_result', toolCallId: block.tool_use_id, content, ...(block.is_error != null && { isError: block.is_error }), ...cacheOf(block) }];
    }
    case 'thinking':
    case 'redacted_thinking':
      // Thinking belongs to assistant turns; in a user turn it has no meaning to keep.
      return [];
    default:
      return [{ type: 'opaque', wire: 'anthropic-messages', kind: block.type, value: block as unknown as Record<string, unknown> }];
  }
}

function imageOf(block: ImageBlockParam): ImagePart {
  const s = block.source as { type: string; media_type?: string; data?: string; url?: string; file_id?: string };
  const source = s.type === 'base64' ? { kind: 'base64' as const, mediaType: s.media_type ?? '', data: s.data ?? '' } : s.type === 'url' ? { kind: 'url' as const, url: s.url ?? '' } : { kind: 'file' as const, fileId: s.file_id ?? '' };
  return { type: 'image', source, ...cacheOf(block) };
}

function documentOf(block: DocumentBlockParam): DocumentPart {
  const s = block.source as { type: string; media_type?: string; data?: string; url?: string; file_id?: string };
  const source = s.type === 'base64' ? { kind: 'base64' as const, mediaType: s.media_type ?? 'application/pdf', data: s.data ?? '' }
    : s.type === 'text' ? { kind: 'text' as const, text: s.data ?? '' }
    : s.type === 'url' ? { kind: 'url' as const, url: s.url ?? '' }
    : { kind: 'file' as const, fileId: s.file_id ?? '' };
  return { type: 'document', source, ...(block.title != null && { title: block.title }), ...cacheOf(block) };
}

function toolOf(tool: ToolUnion): Tool {
  const t = tool as { type?: string; name: string; description?: string; input_schema?: Record<string, unknown>; strict?: boolean; cache_control?: { type: string; ttl?: string } | null };
  if (t.type === undefined || t.type === 'custom') {
    return {
      kind: 'function',
      name: t.name,
      ...(t.description !== undefined && { description: t.description }),
      parameters: t.input_schema ?? { type: 'object' },
      ...(t.strict !== undefined && { strict: t.strict }),
      ...cacheOf(t),
    };
  }
  return { kind: 'provider', wire: 'anthropic-messages', type: t.type, name: t.name, fields: tool as unknown as Record<string, unknown> };
}

function toolChoiceOf(choice: AnthropicToolChoice): ToolChoice {
  switch (choice.type) {
    case 'any':
      return { type: 'required' };
    case 'tool':
      return { type: 'tool', name: choice.name };
    default:
      return { type: choice.type };
  }
}

function reasoningOf(thinking: MessageCreateParamsBase['thinking'], effort: string | undefined): ReasoningRequest | undefined {
  const withEffort = effort ? { effort: effort as ReasoningEffort } : {};
  if (!thinking) return effort ? { mode: 'enabled', ...withEffort } : undefined;
  const t = thinking as { type: string; budget_tokens?: number };
  if (t.type === 'enabled') return { mode: 'enabled', ...(t.budget_tokens !== undefined && { budgetTokens: t.budget_tokens }), ...withEffort };
  if (t.type === 'disabled') return { mode: 'disabled', ...withEffort };
  return { mode: 'adaptive', ...withEffort };
}

function cacheControl(part: { cache?: CacheMark }): { cache_control?: { type: 'ephemeral'; ttl?: '5m' | '1h' } } {
  return part.cache ? { cache_control: { type: 'ephemeral', ...(part.cache.ttl && { ttl: part.cache.ttl }) } } : {};
}

/**
 * The canonical call → a Messages request for Anthropic. Thinking goes back as it came: signed
 * thinking and redacted blocks in their places, ahead of the tool calls that followed them;
 * thinking without a signature (another provider's) is left out, since Anthropic would refuse it.
 */
export function encodeMessagesRequest(call: Call): MessagesWireRequest {
  const { prompt, settings } = call;
  const body: MessagesFields = { model: settings.model, max_tokens: settings.maxOutputTokens, messages: prompt.turns.map(messageOf) };
  if (prompt.system.length) body.system = prompt.system.length === 1 && !prompt.system[0].cache ? prompt.system[0].text : prompt.system.map(textBlock);
  if (settings.temperature !== undefined) body.temperature = Math.min(settings.temperature, 1);
  if (settings.topP !== undefined) body.top_p = settings.topP;
  if (settings.topK !== undefined) body.top_k = settings.topK;
  if (settings.stop?.length) body.stop_sequences = settings.stop;
  const tools = settings.tools.flatMap((tool): ToolUnion[] => {
    if (tool.kind === 'provider') return tool.wire === 'anthropic-messages' ? [tool.fields as unknown as ToolUnion] : [];
    return [{
      name: tool.name,
      ...(tool.description !== undefined && { description: tool.description }),
      input_schema: tool.parameters as { type: 'object' },
      ...(tool.strict !== undefined && { strict: tool.strict }),
      ...cacheControl(tool),
    }];
  });
  if (tools.length) body.tools = tools;
  const choice = settings.toolChoice;
  const noParallel = settings.parallelToolCalls === false ? { disable_parallel_tool_use: true } : {};
  if (choice?.type === 'none') body.tool_choice = { type: 'none' };
  else if (choice?.type === 'required') body.tool_choice = { type: 'any', ...noParallel };
  else if (choice?.type === 'tool') body.tool_choice = { type: 'tool', name: choice.name, ...noParallel };
  else if (choice?.type === 'auto' || settings.parallelToolCalls === false) body.tool_choice = { type: 'auto', ...noParallel };
  const thinking = thinkingFor(call);
  if (thinking) body.thinking = thinking;
  const output: Record<string, unknown> = {};
  const r = settings.reasoning;
  // An effort goes as Anthropic's own `output_config.effort` only beside Anthropic's own thinking words (a budget or adaptive).
  if (r?.effort && (r.mode !== 'enabled' || r.budgetTokens !== undefined)) output.effort = r.effort;
  if (settings.responseFormat?.type === 'json_schema') output.format = { type: 'json_schema', schema: settings.responseFormat.schema };
  if (Object.keys(output).length) body.output_config = output as MessageCreateParamsBase['output_config'];
  if (settings.user !== undefined) body.metadata = { user_id: settings.user };
  if (settings.serviceTier === 'auto' || settings.serviceTier === 'standard_only') body.service_tier = settings.serviceTier;
  if (settings.stream) body.stream = true;
  if (settings.extensions?.wire === 'anthropic-messages') {
    const { output_config: extraOutput, ...fields } = settings.extensions.fields as { output_config?: Record<string, unknown> };
    Object.assign(body, fields);
    if (extraOutput) body.output_config = { ...extraOutput, ...(body.output_config ?? {}) } as MessageCreateParamsBase['output_config'];
  }
  return body as MessagesWireRequest;
}

/**
 * Anthropic's thinking for the call. An effort without a budget becomes one (1,024 to 32,000
 * tokens, below max_tokens). Thinking stays off where Anthropic would refuse it: a forced tool, a
 * temperature other than 1, top_p below 0.95, or a tool-call turn to continue that carries no
 * signed thinking of its own.
 */
export function thinkingFor(call: Call): MessageCreateParamsBase['thinking'] | undefined {
  const { settings, prompt } = call;
  const r = settings.reasoning;
  if (!r) return undefined;
  if (r.mode === 'disabled') return { type: 'disabled' };
  if (r.mode === 'adaptive') return { type: 'adaptive' } as MessageCreateParamsBase['thinking'];
  const wanted = r.budgetTokens ?? (r.effort ? THINKING_BUDGET[r.effort] : undefined);
  if (!wanted) return undefined;
  if (r.budgetTokens === undefined) {
    if (settings.toolChoice?.type === 'required' || settings.toolChoice?.type === 'tool') return undefined;
    if (settings.temperature !== undefined && Math.min(settings.temperature, 1) !== 1) return undefined;
    if (settings.topP !== undefined && settings.topP < 0.95) return undefined;
    const last = [...prompt.turns].reverse().find((t) => t.role === 'assistant');
    if (last?.parts.some((p) => p.type === 'tool_call') && !last.parts.some(isSignedThinking)) return undefined;
  }
  const budget = Math.min(wanted, settings.maxOutputTokens - 1);
  return budget >= MIN_THINKING_BUDGET ? { type: 'enabled', budget_tokens: budget } : undefined;
}

function isSignedThinking(part: AssistantPart): boolean {
  return part.type === 'reasoning' && (part.redactedData !== undefined || !!part.signature);
}

function textBlock(part: TextPart): TextBlockParam {
  return { type: 'text', text: part.text, ...cacheControl(part) };
}

function messageOf(turn: Turn): MessagesWireMessage {
  if (turn.role === 'system') {
    return { role: 'system', content: turn.parts.length === 1 && !turn.parts[0].cache ? turn.parts[0].text : turn.parts.map(textBlock) };
  }
  if (turn.role === 'assistant') return { role: 'assistant', content: turn.parts.flatMap(assistantBlock) };
  return { role: 'user', content: turn.parts.map(userBlock) };
}

function assistantBlock(part: AssistantPart): ContentBlockParam[] {
  switch (part.type) {
    case 'text':
      return [textBlock(part)];
    case 'reasoning':
      if (part.redactedData !== undefined) return [{ type: 'redacted_thinking', data: part.redactedData }];
      return part.signature ? [{ type: 'thinking', thinking: part.text, signature: part.signature }] : [];
    case 'tool_call':
      return [{ type: 'tool_use', id: part.id, name: part.name, input: toolInput(part.arguments) }];
    case 'opaque':
      return part.wire === 'anthropic-messages' ? [part.value as unknown as ContentBlockParam] : [];
  }
}

function userBlock(part: UserPart): ContentBlockParam {
  switch (part.type) {
    case 'text':
      return textBlock(part);
    case 'image':
      return imageBlock(part);
    case 'document':
      return documentBlock(part);
    case 'tool_result': {
      const single = part.content.length === 1 && part.content[0].type === 'text' && !part.content[0].cache ? part.content[0].text : undefined;
      return {
        type: 'tool_result',
        tool_use_id: part.toolCallId,
        content: single ?? part.content.map((c) => (c.type === 'text' ? textBlock(c) : c.type === 'image' ? imageBlock(c) : documentBlock(c))),
        ...(part.isError !== undefined && { is_error: part.isError }),
        ...cacheControl(part),
      } as ContentBlockParam;
    }
    case 'opaque':
      return part.value as unknown as ContentBlockParam;
  }
}

function imageBlock(part: ImagePart): ImageBlockParam {
  const s = part.source;
  const source = s.kind === 'base64' ? { type: 'base64', media_type: s.mediaType, data: s.data } : s.kind === 'url' ? { type: 'url', url: s.url } : { type: 'file', file_id: s.fileId };
  return { type: 'image', source, ...cacheControl(part) } as ImageBlockParam;
}

function documentBlock(part: DocumentPart): DocumentBlockParam {
  const s = part.source;
  const source = s.kind === 'base64' ? { type: 'base64', media_type: s.mediaType, data: s.data }
    : s.kind === 'text' ? { type: 'text', media_type: 'text/plain', data: s.text }
    : s.kind === 'url' ? { type: 'url', url: s.url }
    : { type: 'file', file_id: s.fileId };
  return { type: 'document', source, ...(part.title !== undefined && { title: part.title }), ...cacheControl(part) } as DocumentBlockParam;
}

/** A tool call's arguments as the `input` object Anthropic expects; text that is not a JSON object is kept under `arguments`. */
export function toolInput(args: string): Record<string, unknown> {
  if (!args.trim()) return {};
  try {
    const value: unknown = JSON.parse(args);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  return { arguments: args };
}

// ---- answers ----------------------------------------------------------------------------------

/** The finish reasons other than `stop`, each with Anthropic's word (`stop` is `end_turn`). */
const STOP_REASONS: ReadonlyArray<readonly [FinishReason, StopReason]> = [
  ['stop_sequence', 'stop_sequence'],
  ['length', 'max_tokens'],
  ['tool_calls', 'tool_use'],
  ['refusal', 'refusal'],
  ['pause', 'pause_turn'],
];
const STOP_REASON_OF = new Map<FinishReason, StopReason>(STOP_REASONS);
/** Anthropic's words back (a Map: an unknown word such as `constructor` is no key); a full context window is `length` too. */
const FINISH_OF_ANTHROPIC = new Map<string, FinishReason>([
  ...STOP_REASONS.map(([finish, stop]) => [stop, finish] as [string, FinishReason]),
  ['model_context_window_exceeded', 'length'],
]);

export function anthropicStopReason(reason: FinishReason): StopReason {
  return STOP_REASON_OF.get(reason) ?? 'end_turn';
}

export function finishReasonOfAnthropic(reason: string | null | undefined): FinishReason {
  return FINISH_OF_ANTHROPIC.get(reason ?? '') ?? 'stop';
}

/** Anthropic's usage as it reports it: `input_tokens` excludes cache reads and writes. */
export interface MessagesUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number } | null;
  server_tool_use?: { web_search_requests: number; web_fetch_requests: number; [kind: string]: number } | null;
  service_tier?: string | null;
  output_tokens_details?: { thinking_tokens: number } | null;
}

export function messagesUsage(usage: Usage): MessagesUsage {
  const calls = usage.serverToolCalls ?? {};
  const out: MessagesUsage = {
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    cache_creation_input_tokens: usage.cacheWriteTokens + usage.cacheWrite1hTokens,
    cache_read_input_tokens: usage.cacheReadTokens,
  };
  // The lifetime split is written when there are writes to split (as today's translated answers, which have none).
  if (usage.cacheWriteTokens + usage.cacheWrite1hTokens > 0) out.cache_creation = { ephemeral_5m_input_tokens: usage.cacheWriteTokens, ephemeral_1h_input_tokens: usage.cacheWrite1hTokens };
  if (Object.keys(calls).length) {
    const byField: Record<string, number> = { web_search_requests: 0, web_fetch_requests: 0 };
    for (const [field, kind] of Object.entries(SERVER_TOOL_USAGE)) if (calls[kind] !== undefined) byField[field] = calls[kind];
    out.server_tool_use = byField as MessagesUsage['server_tool_use'];
  }
  if (usage.serviceTier !== undefined) out.service_tier = usage.serviceTier;
  if (usage.reasoningTokens !== undefined) out.output_tokens_details = { thinking_tokens: usage.reasoningTokens };
  return out;
}

/** Anthropic's usage (whole, or `message_delta`'s cumulative fields) → canonical. */
export function usageOfMessages(usage: Partial<MessagesUsage>, before: Usage = ZERO_USAGE): Usage {
  const writes = usage.cache_creation_input_tokens ?? undefined;
  const split = usage.cache_creation;
  // message_delta's cumulative total comes without the lifetime split message_start gave: the split once known is kept.
  const kept1h = writes !== undefined ? Math.min(before.cacheWrite1hTokens, writes) : before.cacheWrite1hTokens;
  const cacheWriteTokens = split ? split.ephemeral_5m_input_tokens : writes !== undefined ? writes - kept1h : before.cacheWriteTokens;
  const cacheWrite1hTokens = split ? split.ephemeral_1h_input_tokens : kept1h;
  const calls: Record<string, number> = { ...before.serverToolCalls };
  for (const [field, n] of Object.entries(usage.server_tool_use ?? {})) {
    const kind = SERVER_TOOL_USAGE[field];
    if (kind && typeof n === 'number' && n > 0) calls[kind] = n;
  }
  const reasoning = usage.output_tokens_details?.thinking_tokens ?? before.reasoningTokens;
  const tier = usage.service_tier ?? before.serviceTier;
  return {
    inputTokens: usage.input_tokens ?? before.inputTokens,
    cacheReadTokens: usage.cache_read_input_tokens ?? before.cacheReadTokens,
    cacheWriteTokens,
    cacheWrite1hTokens,
    outputTokens: usage.output_tokens ?? before.outputTokens,
    ...(reasoning !== undefined && { reasoningTokens: reasoning }),
    ...(Object.keys(calls).length > 0 && { serverToolCalls: calls }),
    ...(tier != null && { serviceTier: tier }),
  };
}

export type MessagesAnswerBlock =
  | { type: 'text'; text: string; citations?: null }
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown };

/** A Messages answer, as far as the gateway writes and reads one. */
export interface MessagesAnswer {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: MessagesAnswerBlock[];
  stop_reason: StopReason | null;
  stop_sequence: string | null;
  usage: MessagesUsage;
}

function blockOf(part: AnswerPart): MessagesAnswerBlock[] {
  switch (part.type) {
    case 'text':
    case 'refusal':
      return part.text ? [{ type: 'text', text: part.text }] : [];
    case 'reasoning':
      if (part.redactedData !== undefined) return [{ type: 'redacted_thinking', data: part.redactedData }];
      if (!part.text && !part.signature) return [];
      return [{ type: 'thinking', thinking: part.text, signature: part.signature ?? '' }];
    case 'tool_call':
      return [{ type: 'tool_use', id: part.id, name: part.name, input: toolInput(part.arguments) }];
  }
}

export function encodeMessagesAnswer(answer: Answer): MessagesAnswer {
  return {
    id: answer.id,
    type: 'message',
    role: 'assistant',
    model: answer.model,
    content: answer.parts.flatMap(blockOf),
    stop_reason: anthropicStopReason(answer.finishReason),
    stop_sequence: answer.stopSequence ?? null,
    usage: messagesUsage(answer.usage ?? ZERO_USAGE),
  };
}

export function decodeMessagesAnswer(message: { id: string; model: string; content: Array<{ type: string; [k: string]: unknown }>; stop_reason: string | null; stop_sequence?: string | null; usage: Partial<MessagesUsage> }): Answer {
  const parts: AnswerPart[] = [];
  for (const block of message.content as MessagesAnswerBlock[]) {
    switch (block.type) {
      case 'text':
        parts.push({ type: 'text', text: block.text });
        break;
      case 'thinking':
        parts.push({ type: 'reasoning', text: block.thinking, signature: block.signature });
        break;
      case 'redacted_thinking':
        parts.push({ type: 'reasoning', text: '', redactedData: block.data });
        break;
      case 'tool_use':
        parts.push({ type: 'tool_call', id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) });
        break;
      default:
        // Server-tool blocks: the provider ran them; they are billed through usage, not answered.
        break;
    }
  }
  return {
    id: message.id,
    model: message.model,
    createdS: Math.floor(Date.now() / 1000),
    parts,
    finishReason: finishReasonOfAnthropic(message.stop_reason),
    ...(message.stop_sequence != null && { stopSequence: message.stop_sequence }),
    usage: usageOfMessages(message.usage),
  };
}

/** The stream events as the gateway writes them (the SDK's RawMessageStreamEvent, plus `ping`). */
export type MessagesStreamEvent =
  | { type: 'message_start'; message: MessagesAnswer }
  | { type: 'content_block_start'; index: number; content_block: MessagesAnswerBlock }
  | {
      type: 'content_block_delta';
      index: number;
      delta:
        | { type: 'text_delta'; text: string }
        | { type: 'thinking_delta'; thinking: string }
        | { type: 'signature_delta'; signature: string }
        | { type: 'input_json_delta'; partial_json: string };
    }
  | { type: 'content_block_stop'; index: number }
  | { type: 'message_delta'; delta: { stop_reason: StopReason | null; stop_sequence: string | null }; usage: MessagesUsage }
  | { type: 'message_stop' }
  | { type: 'ping' };

/**
 * Answer events → Messages stream events, the sequence Anthropic's SDKs and Claude Code rely on:
 * `message_start` and a `ping`, content blocks with contiguous indices, one open at a time, then
 * (at `end`) `message_delta` with the stop reason and final usage, and `message_stop`.
 */
export class MessagesEventEncoder {
  private id = '';
  private model = '';
  private open: { part: number; block: number; kind: AnswerPart['type'] } | undefined;
  private readonly closed = new Set<number>();
  private nextBlock = 0;
  private finish: { reason: FinishReason; stopSequence?: string } | undefined;
  private usage: Usage | undefined;
  private outputPieces = 0;

  constructor(private readonly promptTokensEstimate = 0) {}

  push(event: AnswerEvent): MessagesStreamEvent[] {
    const out: MessagesStreamEvent[] = [];
    // A message is one choice: later ones (Chat's `n > 1`, never asked on this wire) have no place in it.
    if ('choice' in event && event.choice) return out;
    switch (event.type) {
      case 'start': {
        this.id = event.id;
        this.model = event.model;
        const usage = messagesUsage({ ...ZERO_USAGE, inputTokens: this.promptTokensEstimate });
        out.push({ type: 'message_start', message: { id: this.id, type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage } }, { type: 'ping' });
        break;
      }
      case 'text':
      case 'refusal':
        if (!event.text) break;
        out.push(...this.blockFor(event.index, event.type, { type: 'text', text: '' }));
        out.push({ type: 'content_block_delta', index: this.open!.block, delta: { type: 'text_delta', text: event.text } });
        this.outputPieces++;
        break;
      case 'reasoning':
        out.push(...this.blockFor(event.index, 'reasoning', { type: 'thinking', thinking: '', signature: '' }));
        if (event.text) out.push({ type: 'content_block_delta', index: this.open!.block, delta: { type: 'thinking_delta', thinking: event.text } });
        break;
      case 'reasoning_signature':
        out.push(...this.blockFor(event.index, 'reasoning', { type: 'thinking', thinking: '', signature: '' }));
        out.push({ type: 'content_block_delta', index: this.open!.block, delta: { type: 'signature_delta', signature: event.signature } });
        break;
      case 'reasoning_redacted':
        out.push(...this.blockFor(event.index, 'reasoning', { type: 'redacted_thinking', data: event.data }));
        break;
      case 'reasoning_encrypted':
        break;
      case 'tool_call_start':
        out.push(...this.blockFor(event.index, 'tool_call', { type: 'tool_use', id: event.id, name: event.name, input: {} }));
        break;
      case 'tool_call_delta':
        if (this.open?.part !== event.index) throw upstreamError('The upstream interleaved the arguments of two tool calls, which an Anthropic stream cannot carry.');
        if (event.arguments) {
          out.push({ type: 'content_block_delta', index: this.open.block, delta: { type: 'input_json_delta', partial_json: event.arguments } });
          this.outputPieces++;
        }
        break;
      case 'finish':
        this.finish = { reason: event.reason, ...(event.stopSequence !== undefined && { stopSequence: event.stopSequence }) };
        break;
      case 'usage':
        this.usage = event.usage;
        break;
    }
    return out;
  }

  /** After the last answer event: the open block closes, then the stop reason and final usage. */
  end(): MessagesStreamEvent[] {
    const out: MessagesStreamEvent[] = [];
    this.close(out);
    const usage = this.usage ?? { ...ZERO_USAGE, inputTokens: this.promptTokensEstimate, outputTokens: this.outputPieces };
    out.push(
      { type: 'message_delta', delta: { stop_reason: anthropicStopReason(this.finish?.reason ?? 'stop'), stop_sequence: this.finish?.stopSequence ?? null }, usage: messagesUsage(usage) },
      { type: 'message_stop' },
    );
    return out;
  }

  private blockFor(part: number, kind: AnswerPart['type'], start: MessagesAnswerBlock): MessagesStreamEvent[] {
    if (this.open?.part === part) return [];
    if (this.closed.has(part)) throw upstreamError('The upstream went back to an answer part it had left, which an Anthropic stream cannot carry.');
    const out: MessagesStreamEvent[] = [];
    this.close(out);
    this.open = { part, block: this.nextBlock++, kind };
    out.push({ type: 'content_block_start', index: this.open.block, content_block: start });
    return out;
  }

  private close(out: MessagesStreamEvent[]): void {
    if (!this.open) return;
    out.push({ type: 'content_block_stop', index: this.open.block });
    this.closed.add(this.open.part);
    this.open = undefined;
  }
}

/** Anthropic's stream events → answer events. An `error` event throws StreamErrorEvent; server-tool blocks are skipped. */
export class MessagesEventDecoder {
  private readonly parts = new Map<number, { index: number; kind: 'text' | 'reasoning' | 'tool_call'; argumentsSent: boolean }>();
  private nextIndex = 0;
  private usage: Usage = ZERO_USAGE;
  private stopped = false;

  get finished(): boolean {
    return this.stopped;
  }

  push(event: RawMessageStreamEvent | { type: 'ping' } | { type: 'error'; error?: { type?: string; message?: string } }): AnswerEvent[] {
    switch (event.type) {
      case 'ping':
        return [];
      case 'error':
        throw new StreamErrorEvent(event.error?.type, event.error?.message);
      case 'message_start':
        this.usage = usageOfMessages(event.message.usage as Partial<MessagesUsage>);
        return [{ type: 'start', id: event.message.id, model: event.message.model, createdS: Math.floor(Date.now() / 1000) }, { type: 'usage', usage: this.usage }];
      case 'content_block_start': {
        const block = event.content_block as { type: string; text?: string; thinking?: string; signature?: string; data?: string; id?: string; name?: string; input?: unknown };
        const index = this.nextIndex;
        switch (block.type) {
          case 'text':
            this.parts.set(event.index, { index, kind: 'text', argumentsSent: false });
            this.nextIndex++;
            return [{ type: 'text', index, text: block.text ?? '' }];
          case 'thinking': {
            this.parts.set(event.index, { index, kind: 'reasoning', argumentsSent: false });
            this.nextIndex++;
            const out: AnswerEvent[] = [{ type: 'reasoning', index, text: block.thinking ?? '' }];
            if (block.signature) out.push({ type: 'reasoning_signature', index, signature: block.signature });
            return out;
          }
          case 'redacted_thinking':
            this.parts.set(event.index, { index, kind: 'reasoning', argumentsSent: true });
            this.nextIndex++;
            return [{ type: 'reasoning_redacted', index, data: block.data ?? '' }];
          case 'tool_use': {
            const input = block.input && typeof block.input === 'object' && Object.keys(block.input).length ? JSON.stringify(block.input) : '';
            this.parts.set(event.index, { index, kind: 'tool_call', argumentsSent: input !== '' });
            this.nextIndex++;
            const out: AnswerEvent[] = [{ type: 'tool_call_start', index, id: block.id ?? '', name: block.name ?? '' }];
            if (input) out.push({ type: 'tool_call_delta', index, arguments: input });
            return out;
          }
          default:
            return [];
        }
      }
      case 'content_block_delta': {
        const part = this.parts.get(event.index);
        if (!part) return [];
        const delta = event.delta as { type: string; text?: string; thinking?: string; signature?: string; partial_json?: string };
        if (delta.type === 'text_delta' && part.kind === 'text') return delta.text ? [{ type: 'text', index: part.index, text: delta.text }] : [];
        if (delta.type === 'thinking_delta' && part.kind === 'reasoning') return delta.thinking ? [{ type: 'reasoning', index: part.index, text: delta.thinking }] : [];
        if (delta.type === 'signature_delta' && part.kind === 'reasoning') return [{ type: 'reasoning_signature', index: part.index, signature: delta.signature ?? '' }];
        if (delta.type === 'input_json_delta' && part.kind === 'tool_call' && delta.partial_json) {
          part.argumentsSent = true;
          return [{ type: 'tool_call_delta', index: part.index, arguments: delta.partial_json }];
        }
        return [];
      }
      case 'content_block_stop': {
        const part = this.parts.get(event.index);
        // A tool called with no input streams no JSON at all; clients parse the arguments, so it is `{}`.
        if (part?.kind === 'tool_call' && !part.argumentsSent) {
          part.argumentsSent = true;
          return [{ type: 'tool_call_delta', index: part.index, arguments: '{}' }];
        }
        return [];
      }
      case 'message_delta': {
        this.usage = usageOfMessages(event.usage as Partial<MessagesUsage>, this.usage);
        const stopSequence = event.delta.stop_sequence;
        return [
          { type: 'finish', reason: finishReasonOfAnthropic(event.delta.stop_reason), ...(stopSequence != null && { stopSequence }) },
          { type: 'usage', usage: this.usage },
        ];
      }
      case 'message_stop':
        this.stopped = true;
        return [];
      default:
        return [];
    }
  }

  /** When the upstream body ends: a stream cut before message_stop is a failure, not an answer. */
  end(): void {
    if (!this.stopped) throw upstreamError('Anthropic ended the stream before message_stop.');
  }
}

/** The Messages frames of an event: its type is the SSE event name. */
export function messagesFrame(event: MessagesStreamEvent): SseFrame {
  return { event: event.type, data: event };
}

/** Anthropic's error type for a status, as docs.claude.com/en/api/errors lists them. */
export function anthropicErrorTypeOf(status: number): string {
  const byStatus: Record<number, string> = { 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error', 404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 503: 'overloaded_error', 529: 'overloaded_error', 504: 'timeout_error' };
  return byStatus[status] ?? (status < 500 ? 'invalid_request_error' : 'api_error');
}

/** A Messages stream ends with `message_stop` (written by the encoder); a failure is an `error` event. */
export const messagesStreamTerminals: StreamTerminals = {
  ended: () => [],
  failed: (error: StreamError) => [{ event: 'error', data: { type: 'error', error: { type: anthropicErrorTypeOf(error.status), message: error.message } } }],
};
