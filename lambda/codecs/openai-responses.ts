// OpenAI Responses ↔ the canonical model, both ways. The endpoint decodes requests
// (`decodeResponsesRequest`, after resolving `previous_response_id` and `item_reference`s), answers
// JSON with `encodeResponse` and streams with `ResponsesEventEncoder` + `responsesStreamTerminals`; a
// provider speaking Responses would encode with `encodeResponsesRequest` and decode with
// `decodeResponse`. The table of what maps to what is in docs/ARCHITECTURE.md.
import type {
  FunctionTool as ResponsesFunctionTool,
  ResponseFunctionToolCall,
  ResponseOutputMessage,
  ResponseReasoningItem,
} from 'openai/resources/responses/responses';
import { answerEvents as answerEventsOf, type Answer, type AnswerEvent, type AnswerPart, type FinishReason, type TokenLogprob, type UrlCitation, type Usage } from '../core/answer';
import type { Call, DecodedRequest, ReasoningRequest, ResponseFormat } from '../core/call';
import type { AssistantPart, MediaSource, Prompt, ReasoningPart, TextPart, Tool, ToolChoice, UserPart } from '../core/prompt';
import type { SseFrame, StreamError, StreamTerminals } from '../core/sse';
import { GatewayError, invalidRequest } from '../contract/errors';
import type { CreateResponseRequest, InputItem, ResponseObject, ResponseUsage, StoredItem } from '../contract/responses';

/** Marks an `encrypted_content` written by itapi: Anthropic's thinking signature or redacted data, for the way back. */
const CARRIED = 'itapi.v1:';

type Carried = { signature: string } | { redactedData: string };

/**
 * The `encrypted_content` of a reasoning part: OpenAI's own as it came; an Anthropic signature or
 * redacted block as `itapi.v1:` + base64url JSON, so that the item sent back restores the block
 * unchanged; undefined when there is nothing to carry (unsigned thinking).
 */
export function encryptedContentOf(part: Omit<ReasoningPart, 'type'>): string | undefined {
  if (part.encryptedContent !== undefined) return part.encryptedContent;
  const carried: Carried | undefined = part.redactedData !== undefined ? { redactedData: part.redactedData } : part.signature ? { signature: part.signature } : undefined;
  return carried && CARRIED + Buffer.from(JSON.stringify(carried), 'utf8').toString('base64url');
}

/** A reasoning item (output, or sent back as input) → the reasoning part it carries. */
export function reasoningPartOfItem(item: Pick<ResponseReasoningItem, 'id' | 'summary' | 'encrypted_content'> & { content?: ResponseReasoningItem['content'] | null }): ReasoningPart {
  const text = (item.content?.length ? item.content.map((c) => c.text) : (item.summary ?? []).map((s) => s.text)).join('');
  const encrypted = item.encrypted_content ?? undefined;
  if (encrypted?.startsWith(CARRIED)) {
    try {
      const carried = JSON.parse(Buffer.from(encrypted.slice(CARRIED.length), 'base64url').toString('utf8')) as Partial<{ signature: string; redactedData: string }>;
      if (typeof carried.redactedData === 'string') return { type: 'reasoning', text: '', redactedData: carried.redactedData };
      if (typeof carried.signature === 'string') return { type: 'reasoning', text, signature: carried.signature };
    } catch {
      // Not ours after all: kept opaque below.
    }
  }
  return { type: 'reasoning', text, ...(encrypted !== undefined && { encryptedContent: encrypted }), ...(item.id && { id: item.id }) };
}

export type ResponsesOutputItem = ResponseOutputMessage | (ResponseFunctionToolCall & { id: string }) | ResponseReasoningItem;

export interface ResponsesOutputOptions {
  /** `(prefix, position)` → the item's id (`rs_…`, `msg_…`, `fc_…`), from the endpoint's id scheme. */
  idFor: (prefix: 'rs' | 'msg' | 'fc', position: number) => string;
  status: 'completed' | 'incomplete';
  /** `include: ["reasoning.encrypted_content"]`. */
  includeEncrypted: boolean;
  /** `include: ["message.output_text.logprobs"]` (or `top_logprobs`): `output_text` parts carry the provider's logprobs. */
  includeLogprobs?: boolean;
}

/** An `output_text` part's log probability (the spec's `LogProb`: `bytes` always a list). */
export type OutputTextLogprob = { token: string; logprob: number; bytes: number[]; top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }> };
/** An `output_text` part's URL citation, its offsets into the part's own text. */
export type OutputTextCitation = { type: 'url_citation'; url: string; title: string; start_index: number; end_index: number };

/** Chat's per-token logprob (the canonical one) → an `output_text` part's; a token with no bytes (`null`) gets `[]`. */
export function outputTextLogprob(t: TokenLogprob): OutputTextLogprob {
  return { token: t.token, logprob: t.logprob, bytes: t.bytes ?? [], top_logprobs: t.top_logprobs.map((top) => ({ token: top.token, logprob: top.logprob, bytes: top.bytes ?? [] })) };
}

/** An `output_text` part's logprob → a delta or done event's (the spec's `ResponseLogProb`: no bytes). */
function eventLogprob(t: Pick<OutputTextLogprob, 'token' | 'logprob' | 'top_logprobs'>): { token: string; logprob: number; top_logprobs: Array<{ token: string; logprob: number }> } {
  return { token: t.token, logprob: t.logprob, top_logprobs: t.top_logprobs.map((top) => ({ token: top.token, logprob: top.logprob })) };
}

/** An `output_text` part's logprob → the canonical one (bytes as written). */
function tokenLogprobOf(t: Partial<OutputTextLogprob>): TokenLogprob {
  return { token: t.token ?? '', logprob: t.logprob ?? 0, bytes: t.bytes ?? null, top_logprobs: (t.top_logprobs ?? []).map((top) => ({ token: top.token, logprob: top.logprob, bytes: top.bytes ?? null })) };
}

function outputTextCitation(a: UrlCitation, offset: number): OutputTextCitation {
  return { type: 'url_citation', start_index: a.startIndex - offset, end_index: a.endIndex - offset, url: a.url, title: a.title };
}

/** What each text part of a choice carries: its tokens' logprobs and the citations that start in it (offsets still the choice's). */
export interface TextPartExtras {
  /** Where the part's text starts in the choice's text (all its text parts, joined). */
  offset: number;
  logprobs: TokenLogprob[];
  annotations: UrlCitation[];
}

/**
 * The choice's logprobs and citations, split over its text parts (Chat has one text, Responses a
 * text per `output_text` part): a token goes to the part its first character falls in, as the
 * tokens' text adds up; a citation to the part its `startIndex` falls in. What lies past the end
 * goes to the last text part; with no text part there is no place for them.
 */
export function textPartExtras(answer: Pick<Answer, 'parts' | 'logprobs' | 'annotations'>): Map<number, TextPartExtras> {
  const extras = new Map<number, TextPartExtras>();
  const spans: Array<{ index: number; start: number; end: number }> = [];
  let at = 0;
  answer.parts.forEach((part, index) => {
    if (part.type !== 'text') return;
    spans.push({ index, start: at, end: at + part.text.length });
    extras.set(index, { offset: at, logprobs: [], annotations: [] });
    at += part.text.length;
  });
  if (!spans.length) return extras;
  const partAt = (position: number) => extras.get((spans.find((s) => position < s.end) ?? spans[spans.length - 1]).index)!;
  let position = 0;
  for (const token of answer.logprobs?.content ?? []) {
    partAt(position).logprobs.push(token);
    position += token.token.length;
  }
  for (const annotation of answer.annotations ?? []) partAt(annotation.startIndex).annotations.push(annotation);
  return extras;
}

/**
 * A whole answer's output items, in the provider's order: a reasoning item for each thinking part
 * (whether or not `include` asked; its `encrypted_content` when it did), one message for each run of
 * text and refusal, a function call for each tool call.
 */
export function responsesOutput(answer: Answer, options: ResponsesOutputOptions): ResponsesOutputItem[] {
  const out: ResponsesOutputItem[] = [];
  let message: ResponseOutputMessage | undefined;
  const flush = () => {
    if (message?.content.length) out.push(message);
    message = undefined;
  };
  const extras = textPartExtras(answer);
  answer.parts.forEach((part, index) => {
    if (part.type === 'text' || part.type === 'refusal') {
      message ??= { id: options.idFor('msg', out.length), type: 'message', role: 'assistant', status: options.status, content: [] };
      const x = extras.get(index);
      message.content.push(
        part.type === 'text'
          ? {
              type: 'output_text',
              text: part.text,
              annotations: (x?.annotations ?? []).map((a) => outputTextCitation(a, x!.offset)),
              logprobs: options.includeLogprobs ? (x?.logprobs ?? []).map(outputTextLogprob) : [],
            }
          : { type: 'refusal', refusal: part.text },
      );
      return;
    }
    flush();
    if (part.type === 'reasoning') out.push(reasoningItemOf(part, options, out.length));
    else {
      const id = options.idFor('fc', out.length);
      out.push({ id, type: 'function_call', status: options.status, call_id: callIdOf(part.id, id), name: part.name, arguments: part.arguments });
    }
  });
  flush();
  return out;
}

/** A tool call's id for `call_id`; an upstream that gave none still gets one, made from the item's id, since clients pair outputs with it. */
function callIdOf(toolCallId: string, itemId: string): string {
  return toolCallId || `call_${itemId}`;
}

function reasoningItemOf(part: Extract<AnswerPart, { type: 'reasoning' }>, options: ResponsesOutputOptions, position: number): ResponseReasoningItem {
  const encrypted = options.includeEncrypted ? encryptedContentOf(part) : undefined;
  return {
    id: part.id ?? options.idFor('rs', position),
    type: 'reasoning',
    summary: part.text ? [{ type: 'summary_text', text: part.text }] : [],
    ...(encrypted !== undefined && { encrypted_content: encrypted }),
    status: options.status,
  };
}

/**
 * Canonical usage → Responses': `input_tokens` counts cache reads and writes,
 * `cached_tokens` the reads, `cache_write_tokens` the writes (docs/CLIENTS.md).
 */
export function responsesUsage(usage: Usage): ResponseUsage {
  const writes = usage.cacheWriteTokens + usage.cacheWrite1hTokens;
  const input = usage.inputTokens + usage.cacheReadTokens + writes;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: usage.cacheReadTokens, cache_write_tokens: writes } as ResponseUsage['input_tokens_details'],
    output_tokens: usage.outputTokens,
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
    total_tokens: input + usage.outputTokens,
  };
}

/** Responses usage → canonical (an OpenAI upstream's): writes, if any, count as 5-minute writes. */
export function usageOfResponses(usage: ResponseUsage): Usage {
  const details = usage.input_tokens_details as { cached_tokens?: number; cache_write_tokens?: number } | undefined;
  const reads = details?.cached_tokens ?? 0;
  const writes = details?.cache_write_tokens ?? 0;
  const reasoning = usage.output_tokens_details?.reasoning_tokens;
  return {
    inputTokens: usage.input_tokens - reads - writes,
    cacheReadTokens: reads,
    cacheWriteTokens: writes,
    cacheWrite1hTokens: 0,
    outputTokens: usage.output_tokens,
    ...(reasoning != null && { reasoningTokens: reasoning }),
  };
}

// ---- requests ---------------------------------------------------------------------------------

/**
 * An item of the conversation once the endpoint has resolved it: the client's input items as
 * contract/responses.ts parses them, stored items (a previous response's context, input and
 * output, or an item a reference named), and reasoning items.
 */
export type ResponsesItem = Exclude<InputItem, { type: 'item_reference' }> | StoredItem | ResponseReasoningItem;

/** What the endpoint read before decoding: nothing in the codec reads the store. */
export interface ResolvedConversation {
  /** The items before this request's input, oldest first (the previous response's context, input, output); [] without `previous_response_id`. */
  previous?: ReadonlyArray<ResponsesItem>;
  /** The item each `item_reference` of the input names, by item id. */
  references?: ReadonlyMap<string, ResponsesItem>;
}

export interface ResponsesDecodeOptions {
  /** Keep `web_search` tools (the model prices web search): Chat's `web_search_options`. Else they are dropped like every hosted tool. @default false */
  webSearch?: boolean;
}

/** A Responses request decoded: the canonical request, and what the response echoes or the endpoint needs. */
export interface DecodedResponsesRequest extends DecodedRequest {
  /** Hosted tools and input items no route runs, dropped (for `x-itapi-ignored`), in today's words (`web_search`, `namespace:multi_agent_v1`, `input:custom_tool_call`). */
  ignored: string[];
  /** The function tools sent upstream, as the response's `tools` echoes them. */
  tools: EchoedFunctionTool[];
  /** `store` (default true): the endpoint writes the response before its terminal event. */
  store: boolean;
  /** `include: ["reasoning.encrypted_content"]`: reasoning items carry `encrypted_content`. */
  includeEncrypted: boolean;
  /** `include: ["message.output_text.logprobs"]` or a `top_logprobs` above 0: `output_text` parts and deltas carry logprobs. */
  includeLogprobs: boolean;
  metadata: Record<string, string>;
}

/** A function tool as a response's `tools` echoes it (the SDK's `FunctionTool`, every field present). */
export type EchoedFunctionTool = Pick<ResponsesFunctionTool, 'type' | 'name' | 'parameters' | 'strict'> & { description: string | null };

/** Top-level fields the canonical model names (or the endpoint resolves); any other is kept as an extension of this wire. */
const NAMED_FIELDS = new Set([
  'model', 'input', 'instructions', 'stream', 'tools', 'tool_choice', 'parallel_tool_calls', 'text', 'reasoning', 'max_output_tokens',
  'temperature', 'top_p', 'user', 'safety_identifier', 'service_tier', 'previous_response_id', 'top_logprobs',
]);
/** The `include` value that asks for the `output_text` parts' logprobs. */
export const INCLUDE_LOGPROBS = 'message.output_text.logprobs';
const WEB_SEARCH_TOOL = /^web_search(_preview)?(_\d{4}_\d{2}_\d{2})?$/;
const DATA_URL = /^data:([^;,]+);base64,(.*)$/s;

type WireContent = { type: string; text?: string; refusal?: string; image_url?: string | null; file_id?: string | null; detail?: string | null; file_data?: string | null; file_url?: string | null; filename?: string | null };
type WireTool = NonNullable<CreateResponseRequest['tools']>[number];

/**
 * A validated Responses request (contract/responses.ts) → the canonical request. The conversation
 * is `resolved.previous` then `input` (a string is one user message; each `item_reference` replaced
 * by the item `resolved.references` holds for it):
 *
 * - `instructions`, and system / developer messages before the first turn → the system prompt;
 *   later ones → system turns in place.
 * - user messages → user turns (`input_text`, `input_image` as URL, data URL or `file_id`,
 *   `input_file` as a document); `function_call_output` → tool results, one user turn with the
 *   user message after them.
 * - assistant messages, reasoning items (via `reasoningPartOfItem`) and `function_call`s → one
 *   assistant turn in their order, thinking ahead of the calls it led to; an assistant message
 *   after a call starts the next assistant turn (as today).
 * - items of hosted tools (`custom_tool_call`, `web_search_call`, …) and hosted tools → dropped,
 *   named in `ignored`; forcing a dropped tool → 400, as responses/chat-request.ts does.
 */
export function decodeResponsesRequest(request: CreateResponseRequest, resolved: ResolvedConversation = {}, options: ResponsesDecodeOptions = {}): DecodedResponsesRequest {
  const ignored: string[] = [];
  const tools: Tool[] = [];
  const functionTools: Extract<WireTool, { type: 'function' }>[] = [];
  for (const tool of request.tools ?? []) {
    if (tool.type === 'function') functionTools.push(tool);
    else if (options.webSearch && WEB_SEARCH_TOOL.test(tool.toolType)) {
      tools.push({ kind: 'provider', wire: 'openai-responses', type: tool.toolType, ...(tool.name && { name: tool.name }), fields: { type: tool.toolType, ...(tool.searchContextSize && { search_context_size: tool.searchContextSize }) } });
    } else ignored.push(tool.name ? `${tool.toolType}:${tool.name}` : tool.toolType);
  }
  const { kept, choice } = toolChoiceOf(request.tool_choice ?? undefined, functionTools, request.tools ?? []);
  tools.unshift(...kept.map((t): Tool => ({
    kind: 'function',
    name: t.name,
    ...(t.description != null && { description: t.description }),
    parameters: t.parameters ?? { type: 'object', properties: {} },
    ...(t.strict != null && { strict: t.strict }),
  })));

  const prompt = promptOf(request, resolved, ignored);
  if (!prompt.turns.some((t) => t.role !== 'system')) {
    throw invalidRequest("The conversation has no message for the model to answer: send a user message in 'input'.", 'input');
  }

  const raw = request as Record<string, unknown>;
  const extensions = Object.fromEntries(Object.entries(raw).filter(([k, v]) => !NAMED_FIELDS.has(k) && v !== undefined && v !== null));
  const format = responseFormatOf(request.text?.format ?? undefined);
  const reasoning = reasoningOf(request.reasoning ?? undefined);
  const user = request.safety_identifier ?? request.user;
  // Logprobs are asked by `include` (as OpenAI documents) or by asking for alternatives (`top_logprobs` > 0).
  const includeLogprobs = (request.include ?? []).includes(INCLUDE_LOGPROBS) || (request.top_logprobs ?? 0) > 0;
  return {
    prompt,
    options: {
      model: request.model,
      stream: request.stream === true,
      ...(request.max_output_tokens != null && { outputLimit: request.max_output_tokens }),
      ...(request.temperature != null && { temperature: request.temperature }),
      ...(request.top_p != null && { topP: request.top_p }),
      tools,
      ...(choice && { toolChoice: choice }),
      ...(request.parallel_tool_calls != null && { parallelToolCalls: request.parallel_tool_calls }),
      ...(reasoning && { reasoning }),
      ...(format && { responseFormat: format }),
      ...(request.text?.verbosity && { verbosity: request.text.verbosity }),
      ...(user && { user }),
      ...(request.service_tier != null && { serviceTier: request.service_tier }),
      ...(includeLogprobs && { logprobs: { ...(request.top_logprobs != null && { topLogprobs: request.top_logprobs }) } }),
      ...(Object.keys(extensions).length > 0 && { extensions: { wire: 'openai-responses' as const, fields: extensions } }),
    },
    ignored,
    tools: kept.map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null })),
    store: request.store !== false,
    includeEncrypted: (request.include ?? []).includes('reasoning.encrypted_content'),
    includeLogprobs,
    metadata: request.metadata ?? {},
  };
}

function promptOf(request: CreateResponseRequest, resolved: ResolvedConversation, ignored: string[]): Prompt {
  const prompt: Prompt = { system: request.instructions ? [{ type: 'text', text: request.instructions }] : [], turns: [] };
  const input: Array<{ item: ResponsesItem; param: string }> = (resolved.previous ?? []).map((item, i) => ({ item, param: `previous_response_id[${i}]` }));
  const items = request.input === undefined ? [] : typeof request.input === 'string' ? [{ type: 'message' as const, role: 'user' as const, content: request.input }] : request.input;
  items.forEach((item, i) => {
    const param = `input[${i}]`;
    if (item.type !== 'item_reference') return input.push({ item, param });
    const found = resolved.references?.get(item.id);
    if (!found) {
      throw new GatewayError(404, 'invalid_request_error', 'not_found', `Item with id '${item.id.slice(0, 100)}' not found. Items are not persisted when 'store' is set to false; send the item itself instead of a reference.`, { param });
    }
    input.push({ item: found, param });
  });

  let assistant: AssistantPart[] | undefined;
  const last = () => prompt.turns[prompt.turns.length - 1];
  const openAssistant = (afterCalls: boolean): AssistantPart[] => {
    if (!assistant || (afterCalls && assistant.some((p) => p.type === 'tool_call'))) {
      assistant = [];
      prompt.turns.push({ role: 'assistant', parts: assistant });
    }
    return assistant;
  };
  const userTurn = (parts: UserPart[]) => {
    assistant = undefined;
    const previous = last();
    // Tool results, and the user message after them, are one user turn (as Anthropic needs them).
    if (previous?.role === 'user' && previous.parts.every((p) => p.type === 'tool_result')) (previous.parts as UserPart[]).push(...parts);
    else prompt.turns.push({ role: 'user', parts });
  };

  const ignoredItems = new Set<string>();
  for (const { item, param } of input) {
    switch (item.type) {
      case 'message': {
        const content: WireContent[] = typeof item.content === 'string' ? [{ type: 'input_text', text: item.content }] : (item.content as WireContent[]);
        if (item.role === 'assistant') {
          const parts = openAssistant(true);
          content.forEach((part, j) => {
            if (part.type === 'output_text' || part.type === 'input_text' || part.type === 'refusal') {
              const text = part.type === 'refusal' ? (part.refusal ?? '') : (part.text ?? '');
              if (text) parts.push({ type: 'text', text });
            } else throw invalidRequest(`An assistant message can only hold text: '${param}.content[${j}]' is '${part.type}'.`, `${param}.content[${j}].type`);
          });
          continue;
        }
        if (item.role === 'user') {
          const parts = content.map((part, j) => userContent(part, `${param}.content[${j}]`));
          if (parts.length) userTurn(parts);
          continue;
        }
        const texts = content.flatMap((part, j): TextPart[] => {
          const text = part.type === 'refusal' ? part.refusal : part.type === 'input_text' || part.type === 'output_text' ? part.text : undefined;
          if (text === undefined) throw invalidRequest(`Images are only allowed in user messages and tool outputs ('${param}.content[${j}]').`, `${param}.content[${j}]`);
          return text ? [{ type: 'text', text }] : [];
        });
        if (!texts.length) continue;
        assistant = undefined;
        if (prompt.turns.length === 0) prompt.system.push(...texts);
        else prompt.turns.push({ role: 'system', parts: texts });
        continue;
      }
      case 'reasoning':
        // Thinking between two calls stays in their turn, in order (Chat gets both calls in one message).
        openAssistant(false).push(reasoningPartOfItem(item as Parameters<typeof reasoningPartOfItem>[0]));
        continue;
      case 'function_call':
        openAssistant(false).push({ type: 'tool_call', id: item.call_id, name: item.name, arguments: item.arguments });
        continue;
      case 'function_call_output': {
        const output = item.output as string | WireContent[];
        const content = typeof output === 'string'
          ? [{ type: 'text' as const, text: output }]
          : output.map((part, j) => {
              const decoded = userContent(part, `${param}.output[${j}]`);
              if (decoded.type === 'tool_result' || decoded.type === 'opaque') throw invalidRequest(`'${param}.output[${j}]' cannot be '${part.type}'.`, `${param}.output[${j}].type`);
              return decoded;
            });
        userTurn([{ type: 'tool_result', toolCallId: item.call_id, content }]);
        continue;
      }
      case 'unsupported':
        ignoredItems.add(`input:${item.itemType}`);
        continue;
      default:
        ignoredItems.add(`input:${(item as { type: string }).type}`);
    }
  }
  ignored.push(...ignoredItems);
  return prompt;
}

function userContent(part: WireContent, param: string): UserPart {
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      return { type: 'text', text: part.text ?? '' };
    case 'refusal':
      return { type: 'text', text: part.refusal ?? '' };
    case 'input_image': {
      const source: MediaSource | undefined = part.image_url ? mediaOfUrl(part.image_url) : part.file_id ? { kind: 'file', fileId: part.file_id } : undefined;
      if (!source) throw invalidRequest(`'${param}' needs an 'image_url' (an http(s) URL or a data URL) or a 'file_id'.`, `${param}.image_url`, 'missing_required_parameter');
      // Chat Completions knows no `original` detail; it is the highest there is.
      return { type: 'image', source, detail: part.detail === 'original' ? 'high' : ((part.detail ?? 'auto') as 'auto' | 'low' | 'high') };
    }
    case 'input_file': {
      const source: MediaSource | undefined = part.file_data ? mediaOfUrl(part.file_data) : part.file_url ? { kind: 'url', url: part.file_url } : part.file_id ? { kind: 'file', fileId: part.file_id } : undefined;
      if (!source) throw invalidRequest(`'${param}' needs 'file_data', 'file_url' or 'file_id'.`, `${param}.file_data`, 'missing_required_parameter');
      return { type: 'document', source, ...(part.filename && { title: part.filename }) };
    }
    default:
      throw invalidRequest(`'${param}' cannot be '${part.type}'.`, `${param}.type`);
  }
}

function mediaOfUrl(url: string): MediaSource {
  const data = DATA_URL.exec(url);
  return data ? { kind: 'base64', mediaType: data[1], data: data[2] } : { kind: 'url', url };
}

type ToolChoiceWire = NonNullable<CreateResponseRequest['tool_choice']>;
type FunctionToolWire = Extract<WireTool, { type: 'function' }>;

/**
 * `tool_choice` over the function tools a route can run (`allowed_tools` narrows them). Forcing a
 * tool that was dropped (a hosted tool, or a function not in `tools`) is the one case that gets a 400.
 */
function toolChoiceOf(choice: ToolChoiceWire | undefined, tools: FunctionToolWire[], sent: ReadonlyArray<WireTool>): { kept: FunctionToolWire[]; choice: ToolChoice | undefined } {
  if (choice === undefined) return { kept: tools, choice: undefined };
  if (choice === 'none' || choice === 'auto') return { kept: tools, choice: { type: choice } };
  if (choice === 'required') {
    if (!tools.length) throw forcedToolError(sent.length ? "'tool_choice' is 'required', but none of the tools is a function tool this gateway can run" : "'tool_choice' is 'required', but there are no tools");
    return { kept: tools, choice: { type: 'required' } };
  }
  if (choice.type === 'function' && 'name' in choice && typeof choice.name === 'string') {
    const name = choice.name;
    if (!tools.some((t) => t.name === name)) throw forcedToolError(`'tool_choice' names the function '${name}', which is not among the function tools`, 'tool_choice.name');
    return { kept: tools, choice: { type: 'tool', name } };
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
    return { kept, choice: kept.length ? { type: mode === 'required' ? 'required' : 'auto' } : undefined };
  }
  const name = 'name' in choice && typeof choice.name === 'string' ? `${choice.type} '${choice.name}'` : `'${choice.type}'`;
  throw forcedToolError(`'tool_choice' forces the ${name} tool, which no route of this gateway can run (hosted tools are dropped)`, 'tool_choice.type');
}

function forcedToolError(message: string, param = 'tool_choice') {
  return invalidRequest(`${message}.`, param, 'unsupported_tool_choice');
}

function reasoningOf(reasoning: CreateResponseRequest['reasoning'] | undefined): ReasoningRequest | undefined {
  if (!reasoning || (reasoning.effort == null && reasoning.summary == null)) return undefined;
  return {
    mode: reasoning.effort === 'none' ? 'disabled' : 'enabled',
    ...(reasoning.effort != null && { effort: reasoning.effort }),
    ...(reasoning.summary != null && { summary: reasoning.summary }),
  };
}

function responseFormatOf(format: NonNullable<CreateResponseRequest['text']>['format'] | undefined): ResponseFormat | undefined {
  // `text` is the default: nothing to ask of the model.
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  const f = format as { name: string; schema: Record<string, unknown>; description?: string | null; strict?: boolean | null };
  return { type: 'json_schema', name: f.name, schema: f.schema, ...(f.description != null && { description: f.description }), ...(f.strict != null && { strict: f.strict }) };
}

/** Input items as a Responses upstream takes them (the SDK's `ResponseInputItem` shapes, loosely typed). */
export type ResponsesInputItemWire = { type: string; [field: string]: unknown };

export interface ResponsesRequestEncoding {
  request: Record<string, unknown> & { model: string; input: ResponsesInputItemWire[] };
  /** The first thing a Responses upstream cannot take (stop sequences). */
  unsupported?: GatewayError;
  /** Provider tools of another wire, dropped. */
  droppedTools: string[];
}

/**
 * The canonical call → a Responses request (for an upstream speaking Responses; and, decoded back,
 * the round trip the tests pin). The system prompt and system turns are developer messages; an
 * assistant turn is its items in order (a message per run of text, reasoning items, function
 * calls); a user turn is its tool results as `function_call_output`s, then one user message.
 * Thinking goes back only as OpenAI's own (`encryptedContent`); other providers' is left out.
 */
export function encodeResponsesRequest(call: Call): ResponsesRequestEncoding {
  const { prompt, settings } = call;
  const input: ResponsesInputItemWire[] = [];
  const developer = (parts: TextPart[]) => input.push({ type: 'message', role: 'developer', content: parts.map((p) => ({ type: 'input_text', text: p.text })) });
  prompt.system.forEach((part) => developer([part]));
  for (const turn of prompt.turns) {
    if (turn.role === 'system') developer(turn.parts);
    else if (turn.role === 'assistant') input.push(...assistantItems(turn.parts));
    else {
      const own: ResponsesInputItemWire[] = [];
      for (const part of turn.parts) {
        if (part.type === 'tool_result') {
          const single = part.content.length === 1 && part.content[0].type === 'text' ? part.content[0].text : undefined;
          input.push({ type: 'function_call_output', call_id: part.toolCallId, output: single ?? part.content.map(inputContentOf) });
        } else if (part.type !== 'opaque') own.push(inputContentOf(part));
      }
      if (own.length) input.push({ type: 'message', role: 'user', content: own });
    }
  }

  const request: ResponsesRequestEncoding['request'] = { model: settings.model, input, max_output_tokens: settings.maxOutputTokens };
  if (settings.stream) request.stream = true;
  if (settings.temperature !== undefined) request.temperature = settings.temperature;
  if (settings.topP !== undefined) request.top_p = settings.topP;
  const droppedTools: string[] = [];
  const tools = settings.tools.flatMap((tool): Record<string, unknown>[] => {
    if (tool.kind === 'provider') {
      if (tool.wire === 'openai-responses') return [tool.fields];
      droppedTools.push(tool.name ?? tool.type);
      return [];
    }
    return [{ type: 'function', name: tool.name, ...(tool.description !== undefined && { description: tool.description }), parameters: tool.parameters, strict: tool.strict ?? null }];
  });
  if (tools.length) request.tools = tools;
  const choice = settings.toolChoice;
  if (choice) request.tool_choice = choice.type === 'tool' ? { type: 'function', name: choice.name } : choice.type;
  if (settings.parallelToolCalls !== undefined) request.parallel_tool_calls = settings.parallelToolCalls;
  const r = settings.reasoning;
  if (r && (r.effort !== undefined || r.summary !== undefined || r.mode === 'disabled')) {
    request.reasoning = { ...(r.mode === 'disabled' ? { effort: 'none' } : r.effort !== undefined && { effort: r.effort }), ...(r.summary !== undefined && { summary: r.summary }) };
  }
  const format = settings.responseFormat;
  const text: Record<string, unknown> = {};
  if (format && format.type !== 'text') text.format = format.type === 'json_object' ? { type: 'json_object' } : { ...format };
  if (settings.verbosity !== undefined) text.verbosity = settings.verbosity;
  if (Object.keys(text).length) request.text = text;
  if (settings.user !== undefined) request.user = settings.user;
  if (settings.serviceTier !== undefined) request.service_tier = settings.serviceTier;
  if (settings.logprobs) {
    if (settings.logprobs.topLogprobs !== undefined) request.top_logprobs = settings.logprobs.topLogprobs;
    request.include = [INCLUDE_LOGPROBS];
  }
  if (settings.extensions?.wire === 'openai-responses') {
    const { include, ...fields } = settings.extensions.fields as { include?: unknown };
    Object.assign(request, fields);
    if (Array.isArray(include)) request.include = [...new Set([...include, ...((request.include as string[] | undefined) ?? [])])];
  }
  const unsupported = settings.stop?.length ? invalidRequest('stop_sequences: Stop sequences are not supported by the route serving this model, which speaks Responses.', 'stop_sequences', 'unsupported_parameter') : undefined;
  return { request, ...(unsupported && { unsupported }), droppedTools };
}

function assistantItems(parts: ReadonlyArray<AssistantPart>): ResponsesInputItemWire[] {
  const items: ResponsesInputItemWire[] = [];
  let message: { type: 'message'; role: 'assistant'; content: Array<{ type: 'output_text'; text: string }> } | undefined;
  for (const part of parts) {
    if (part.type === 'text') {
      if (!message) items.push((message = { type: 'message', role: 'assistant', content: [] }));
      message.content.push({ type: 'output_text', text: part.text });
      continue;
    }
    message = undefined;
    if (part.type === 'tool_call') items.push({ type: 'function_call', call_id: part.id, name: part.name, arguments: part.arguments });
    else if (part.type === 'reasoning' && part.encryptedContent !== undefined && !part.encryptedContent.startsWith(CARRIED)) {
      items.push({ type: 'reasoning', ...(part.id !== undefined && { id: part.id }), summary: part.text ? [{ type: 'summary_text', text: part.text }] : [], encrypted_content: part.encryptedContent });
    }
  }
  return items;
}

function inputContentOf(part: Exclude<UserPart, { type: 'tool_result' | 'opaque' }>): ResponsesInputItemWire {
  if (part.type === 'text') return { type: 'input_text', text: part.text };
  const s = part.source;
  if (part.type === 'image') {
    const where = s.kind === 'base64' ? { image_url: `data:${s.mediaType};base64,${s.data}` } : s.kind === 'url' ? { image_url: s.url } : s.kind === 'file' ? { file_id: s.fileId } : { image_url: '' };
    return { type: 'input_image', ...where, detail: part.detail ?? 'auto' };
  }
  const where = s.kind === 'base64' ? { file_data: `data:${s.mediaType};base64,${s.data}` }
    : s.kind === 'text' ? { file_data: `data:text/plain;base64,${Buffer.from(s.text, 'utf8').toString('base64')}` }
    : s.kind === 'url' ? { file_url: s.url } : { file_id: s.fileId };
  return { type: 'input_file', ...where, ...(part.title !== undefined && { filename: part.title }) };
}

// ---- answers ----------------------------------------------------------------------------------

/** The Response object as itapi answers it, its output with reasoning items. */
export type ResponsesObject = Omit<ResponseObject, 'output'> & { output: ResponsesOutputItem[] };

/** The Response as `response.created` carries it: in progress, no output, no usage; what the request asked, echoed. */
export function responseShell(request: CreateResponseRequest, decoded: Pick<DecodedResponsesRequest, 'tools' | 'store'>, at: { id: string; model: string; createdAtMs: number }): ResponsesObject {
  const r = request;
  return {
    id: at.id,
    object: 'response',
    created_at: Math.floor(at.createdAtMs / 1000),
    status: 'in_progress',
    completed_at: null,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    max_tool_calls: r.max_tool_calls ?? null,
    model: at.model,
    output: [],
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: r.previous_response_id ?? null,
    prompt_cache_key: r.prompt_cache_key ?? null,
    reasoning: { effort: r.reasoning?.effort ?? null, summary: r.reasoning?.summary ?? null },
    safety_identifier: r.safety_identifier ?? null,
    service_tier: 'default',
    store: decoded.store,
    temperature: r.temperature ?? 1,
    text: { format: (r.text?.format ?? { type: 'text' }) as NonNullable<ResponseObject['text']>['format'], verbosity: r.text?.verbosity ?? 'medium' },
    tool_choice: (r.tool_choice ?? 'auto') as ResponseObject['tool_choice'],
    tools: decoded.tools,
    top_logprobs: r.top_logprobs ?? 0,
    top_p: r.top_p ?? 1,
    truncation: r.truncation ?? 'disabled',
    metadata: r.metadata ?? {},
    ...(r.user ? { user: r.user } : {}),
  };
}

export interface ResponseEncodingOptions {
  /** `(prefix, position)` → an output item's id, from the endpoint's id scheme. */
  idFor: ResponsesOutputOptions['idFor'];
  /** `include: ["reasoning.encrypted_content"]` (`DecodedResponsesRequest.includeEncrypted`). */
  includeEncrypted: boolean;
  /** `DecodedResponsesRequest.includeLogprobs`: `output_text` parts and deltas carry the provider's logprobs. @default false */
  includeLogprobs?: boolean;
}

/** How a finish reason ends a response. */
export function responseStatusOf(reason: FinishReason): { status: 'completed' | 'incomplete'; incomplete_details: ResponseObject['incomplete_details'] } {
  if (reason === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (reason === 'refusal') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

/** OpenAI's service tiers; another provider's (Anthropic's `standard`) is answered as `default`. */
const SERVICE_TIERS = new Set(['auto', 'default', 'flex', 'scale', 'priority']);

function ended(shell: ResponsesObject, end: { status: 'completed' | 'incomplete' | 'failed'; output: ResponsesOutputItem[]; usage?: Usage; incomplete_details?: ResponseObject['incomplete_details']; error?: ResponseObject['error']; nowMs: number }): ResponsesObject {
  const tier = end.usage?.serviceTier;
  return {
    ...shell,
    status: end.status,
    completed_at: end.status === 'completed' ? Math.floor(end.nowMs / 1000) : null,
    error: end.error ?? null,
    incomplete_details: end.incomplete_details ?? null,
    output: end.output,
    ...(tier !== undefined && { service_tier: (SERVICE_TIERS.has(tier) ? tier : 'default') as ResponseObject['service_tier'] }),
    ...(end.usage && { usage: responsesUsage(end.usage) }),
  };
}

/**
 * A whole answer → the Response for a JSON reply (and the store): `shell` (from `responseShell`)
 * with its output in the provider's order (`responsesOutput`), the status by the finish reason
 * (only the last item, the one a limit cut, is `incomplete`), and usage (`responsesUsage`): the
 * provider's, else `estimatedUsage`.
 */
export function encodeResponse(answer: Answer, options: ResponseEncodingOptions & { shell: ResponsesObject; estimatedUsage?: Usage; nowMs?: number }): ResponsesObject {
  const { status, incomplete_details } = responseStatusOf(answer.finishReason);
  const output = responsesOutput(answer, { idFor: options.idFor, includeEncrypted: options.includeEncrypted, includeLogprobs: options.includeLogprobs, status: 'completed' });
  if (output.length) output[output.length - 1].status = status;
  return ended(options.shell, { status, incomplete_details, output, usage: answer.usage ?? options.estimatedUsage, nowMs: options.nowMs ?? Date.now() });
}

/** A Response (an upstream's, or one itapi stored) → the whole answer it carries. */
export function decodeResponse(response: Pick<ResponsesObject, 'id' | 'model' | 'created_at' | 'output' | 'status' | 'incomplete_details'> & { usage?: ResponseUsage | null }): Answer {
  const parts: AnswerPart[] = [];
  const logprobs: TokenLogprob[] = [];
  const annotations: UrlCitation[] = [];
  // Citations are offsets into their part's text; the canonical answer's are into all its text.
  let offset = 0;
  for (const item of response.output) {
    if (item.type === 'reasoning') parts.push(reasoningPartOfItem(item));
    else if (item.type === 'function_call') parts.push({ type: 'tool_call', id: item.call_id, name: item.name, arguments: item.arguments });
    else {
      for (const c of item.content) {
        if (c.type !== 'output_text') {
          parts.push({ type: 'refusal', text: c.refusal });
          continue;
        }
        parts.push({ type: 'text', text: c.text });
        logprobs.push(...(c.logprobs ?? []).map(tokenLogprobOf));
        for (const a of (c.annotations ?? []) as Array<Partial<OutputTextCitation>>) {
          if (a.type !== 'url_citation' || typeof a.url !== 'string' || typeof a.start_index !== 'number' || typeof a.end_index !== 'number') continue;
          annotations.push({ type: 'url_citation', url: a.url, title: a.title ?? '', startIndex: a.start_index + offset, endIndex: a.end_index + offset });
        }
        offset += c.text.length;
      }
    }
  }
  const reason = response.incomplete_details?.reason;
  const finishReason: FinishReason = response.status === 'incomplete' && reason === 'max_output_tokens' ? 'length'
    : response.status === 'incomplete' && reason === 'content_filter' ? 'refusal'
    : parts.some((p) => p.type === 'tool_call') ? 'tool_calls' : 'stop';
  return {
    id: response.id,
    model: response.model,
    createdS: response.created_at,
    parts,
    finishReason,
    ...(logprobs.length > 0 && { logprobs: { content: logprobs, refusal: null } }),
    ...(annotations.length > 0 && { annotations }),
    ...(response.usage && { usage: usageOfResponses(response.usage) }),
  };
}

// ---- stream events ----------------------------------------------------------------------------

type ReasoningState = Omit<ReasoningPart, 'type'>;
type OpenItem =
  | { kind: 'message'; outputIndex: number; item: ResponseOutputMessage; part: { index: number; contentIndex: number } | undefined }
  | { kind: 'reasoning'; outputIndex: number; item: ResponseReasoningItem; part: number; state: ReasoningState; summaryOpen: boolean }
  | { kind: 'function_call'; outputIndex: number; item: ResponseFunctionToolCall & { id: string }; part: number };

/** A Responses stream event without its sequence number (the encoder numbers them). */
type ResponsesEventBody = { type: string; [field: string]: unknown };

/**
 * Answer events → Responses stream events, each an `SseFrame` (`event:` its type, `data:` the
 * event with `sequence_number` 0, 1, 2, … across the stream), in the order clients rely on:
 * `response.created` and `response.in_progress` first; an item's `output_item.added` (and a
 * part's `content_part.added` / `reasoning_summary_part.added`) before its deltas; one item open
 * at a time, closed (`…done`, then `output_item.done`) before the next opens. Thinking becomes a
 * reasoning item (summary text events) where the provider thought, with `encrypted_content` in its
 * `output_item.done` when `include` asked. Function calls keep the upstream's id as `call_id`.
 *
 * The end is the endpoint's: `finalResponse()` (or `failedResponse(error)`) is what it stores;
 * it hands the stored object to `stored()`; then `responsesStreamTerminals(encoder)` writes the
 * closing events and `response.completed` / `response.incomplete` / `response.failed` carrying it.
 */
export class ResponsesEventEncoder {
  private sequence = 0;
  private started = false;
  private readonly output: ResponsesOutputItem[] = [];
  private open: OpenItem | undefined;
  /** Canonical part index → where it went, so that a late delta still reaches the final output. */
  private readonly parts = new Map<number, { item: ResponsesOutputItem; contentIndex?: number; state?: ReasoningState }>();
  private finish: FinishReason | undefined;
  private usage: Usage | undefined;
  private storedResponse: ResponsesObject | undefined;
  /** Logprobs of tokens whose text has not come yet (a Chat chunk gives them ahead of its text): they ride on the next text delta. */
  private pendingLogprobs: TokenLogprob[] = [];
  /** Citations that came before any text: placed when the first text part opens. */
  private pendingAnnotations: UrlCitation[] = [];

  constructor(
    private readonly shell: ResponsesObject,
    private readonly options: ResponseEncodingOptions,
  ) {}

  push(event: AnswerEvent): SseFrame[] {
    const frames: SseFrame[] = this.start();
    // A response is one choice: later ones (Chat's `n > 1`, never asked on this wire) have no place in it.
    if ('choice' in event && event.choice) return frames;
    switch (event.type) {
      case 'start':
        break;
      case 'text':
      case 'refusal':
        if (event.text) this.textDelta(event.index, event.type, event.text, frames);
        break;
      case 'reasoning': {
        const open = this.reasoningAt(event.index, undefined, frames);
        if (!event.text) break;
        // Thinking for an item already closed reaches the final output only.
        if (!open) {
          const late = this.parts.get(event.index)?.state;
          if (late) late.text += event.text;
          break;
        }
        open.state.text += event.text;
        if (!open.summaryOpen) {
          open.summaryOpen = true;
          frames.push(this.frame({ type: 'response.reasoning_summary_part.added', item_id: open.item.id, output_index: open.outputIndex, summary_index: 0, part: { type: 'summary_text', text: '' } }));
        }
        frames.push(this.frame({ type: 'response.reasoning_summary_text.delta', item_id: open.item.id, output_index: open.outputIndex, summary_index: 0, delta: event.text }));
        break;
      }
      case 'reasoning_signature':
        this.reasoningState(event.index, undefined, frames).signature = event.signature;
        break;
      case 'reasoning_redacted':
        this.reasoningState(event.index, undefined, frames).redactedData = event.data;
        break;
      case 'reasoning_encrypted': {
        const state = this.reasoningState(event.index, event.id, frames);
        state.encryptedContent = event.encryptedContent;
        break;
      }
      case 'tool_call_start': {
        if (this.parts.has(event.index)) break;
        this.close('completed', frames);
        const outputIndex = this.output.length;
        const id = this.options.idFor('fc', outputIndex);
        const item: ResponseFunctionToolCall & { id: string } = { id, type: 'function_call', status: 'in_progress', call_id: callIdOf(event.id, id), name: event.name, arguments: '' };
        this.output.push(item);
        this.parts.set(event.index, { item });
        this.open = { kind: 'function_call', outputIndex, item, part: event.index };
        frames.push(this.frame({ type: 'response.output_item.added', output_index: outputIndex, item: { ...item } }));
        break;
      }
      case 'tool_call_delta': {
        const item = this.parts.get(event.index)?.item;
        if (item?.type !== 'function_call' || !event.arguments) break;
        item.arguments += event.arguments;
        // A late fragment of a call already closed reaches the final output only: its events are over.
        if (this.open?.kind === 'function_call' && this.open.item === item) {
          frames.push(this.frame({ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: this.open.outputIndex, delta: event.arguments }));
        }
        break;
      }
      case 'logprobs':
        if (this.options.includeLogprobs && event.content?.length) this.pendingLogprobs.push(...event.content);
        break;
      case 'annotation':
        this.annotate(event.annotation, frames);
        break;
      case 'finish':
        this.finish = event.reason;
        this.flushLogprobs();
        break;
      case 'usage':
        this.usage = event.usage;
        break;
    }
    return frames;
  }

  /** The provider's last usage report, if any (else the endpoint estimates). */
  get reportedUsage(): Usage | undefined {
    return this.usage;
  }

  /** The response the stream ends with (completed or incomplete by the finish reason), to store before the terminal event. */
  finalResponse(estimatedUsage?: Usage, nowMs = Date.now()): ResponsesObject {
    this.flushLogprobs();
    const { status, incomplete_details } = responseStatusOf(this.finish ?? 'stop');
    return ended(this.shell, { status, incomplete_details, output: this.outputWith(status), usage: this.usage ?? estimatedUsage, nowMs });
  }

  /** The response of a stream that failed after it began: what was delivered, its open item `incomplete`, and the error. */
  failedResponse(error: StreamError, estimatedUsage?: Usage, nowMs = Date.now()): ResponsesObject {
    this.flushLogprobs();
    return ended(this.shell, { status: 'failed', output: this.outputWith('incomplete'), usage: this.usage ?? estimatedUsage, error: { code: responseErrorCode(error.status), message: error.message }, nowMs });
  }

  /** The response as the endpoint stored it (with `store: false` if the write failed): the terminal event carries this one. */
  stored(response: ResponsesObject): void {
    this.storedResponse = response;
  }

  /** After the last answer event: the open item closed, then `response.completed` or `response.incomplete`. */
  ended(): SseFrame[] {
    const frames = this.start();
    const response = this.storedResponse ?? this.finalResponse();
    this.close(response.status === 'incomplete' ? 'incomplete' : 'completed', frames);
    frames.push(this.frame({ type: response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', response }));
    return frames;
  }

  /** A failure after the first byte: no `…done` events (a client would run a call whose arguments were cut), then `response.failed`. */
  failed(error: StreamError): SseFrame[] {
    const frames = this.start();
    this.open = undefined;
    const response = this.storedResponse?.status === 'failed' ? this.storedResponse : this.failedResponse(error);
    frames.push(this.frame({ type: 'response.failed', response }));
    return frames;
  }

  private start(): SseFrame[] {
    if (this.started) return [];
    this.started = true;
    return [this.frame({ type: 'response.created', response: this.shell }), this.frame({ type: 'response.in_progress', response: this.shell })];
  }

  private frame(body: ResponsesEventBody): SseFrame {
    const data = { ...body, sequence_number: this.sequence++ };
    return { event: body.type, data };
  }

  /** The output so far, as the final response holds it: items still open get `status`. */
  private outputWith(status: 'completed' | 'incomplete'): ResponsesOutputItem[] {
    return this.output.map((item) => {
      const copy = structuredClone(item);
      if (copy.status === 'in_progress') copy.status = status;
      if (copy.type === 'reasoning') Object.assign(copy, this.reasoningItem(copy.id, copy.status!));
      return copy;
    });
  }

  private reasoningItem(id: string, status: 'in_progress' | 'completed' | 'incomplete'): ResponseReasoningItem {
    const state = [...this.parts.values()].find((p) => p.item.id === id)?.state ?? { text: '' };
    return reasoningItemOf({ type: 'reasoning', ...state, id }, { idFor: this.options.idFor, includeEncrypted: this.options.includeEncrypted, status: status as 'completed' }, 0);
  }

  private textDelta(index: number, kind: 'text' | 'refusal', text: string, frames: SseFrame[]): void {
    const known = this.parts.get(index);
    if (known) {
      const part = (known.item as ResponseOutputMessage).content?.[known.contentIndex ?? -1];
      if (!part) return;
      // The logprobs waiting for this text are the tokens it is made of.
      const logprobs = part.type === 'output_text' ? this.takeLogprobs(part) : [];
      if (part.type === 'output_text') part.text += text;
      else part.refusal += text;
      const open = this.open;
      if (open?.kind !== 'message' || open.part?.index !== index) return;
      const at = { item_id: open.item.id, output_index: open.outputIndex, content_index: open.part.contentIndex };
      frames.push(this.frame(part.type === 'output_text' ? { type: 'response.output_text.delta', ...at, delta: text, logprobs: logprobs.map(eventLogprob) } : { type: 'response.refusal.delta', ...at, delta: text }));
      return;
    }
    let open = this.open;
    if (open?.kind !== 'message') {
      this.close('completed', frames);
      const outputIndex = this.output.length;
      const item: ResponseOutputMessage = { id: this.options.idFor('msg', outputIndex), type: 'message', role: 'assistant', status: 'in_progress', content: [] };
      this.output.push(item);
      open = this.open = { kind: 'message', outputIndex, item, part: undefined };
      frames.push(this.frame({ type: 'response.output_item.added', output_index: outputIndex, item: { ...item, content: [] } }));
    }
    this.closePart(open, frames);
    const part: ResponseOutputMessage['content'][number] = kind === 'text' ? { type: 'output_text', text: '', annotations: [], logprobs: [] } : { type: 'refusal', refusal: '' };
    const contentIndex = open.item.content.push(part) - 1;
    open.part = { index, contentIndex };
    this.parts.set(index, { item: open.item, contentIndex });
    frames.push(this.frame({ type: 'response.content_part.added', item_id: open.item.id, output_index: open.outputIndex, content_index: contentIndex, part: structuredClone(part) }));
    this.textDelta(index, kind, text, frames);
    if (kind === 'text') for (const annotation of this.pendingAnnotations.splice(0)) this.annotate(annotation, frames);
  }

  /** The logprobs waiting for text, moved into the `output_text` part the text goes to; returned for its delta event. */
  private takeLogprobs(part: Extract<ResponseOutputMessage['content'][number], { type: 'output_text' }>): OutputTextLogprob[] {
    if (!this.pendingLogprobs.length) return [];
    const taken = this.pendingLogprobs.splice(0).map(outputTextLogprob);
    (part.logprobs ??= []).push(...taken);
    return taken;
  }

  /**
   * Logprobs no text followed (a whole answer gives them after all its text) go where their tokens
   * are, as `textPartExtras` places them: each to the text part its first character falls in, the
   * rest to the last. They show in that part's `…done` events and the final output.
   */
  private flushLogprobs(): void {
    const texts = this.textParts();
    if (!texts.length || !this.pendingLogprobs.length) return;
    let position = texts.reduce((n, t) => n + (t.part.logprobs ?? []).reduce((m, l) => m + l.token.length, 0), 0);
    for (const token of this.pendingLogprobs.splice(0)) {
      const target = texts.find((t) => position < t.start + t.part.text.length) ?? texts[texts.length - 1];
      (target.part.logprobs ??= []).push(outputTextLogprob(token));
      position += token.token.length;
    }
  }

  /** The `output_text` parts so far in the answer's order, each with where its text starts in the choice's text. */
  private textParts(): Array<{ index: number; start: number; item: ResponseOutputMessage; contentIndex: number; part: Extract<ResponseOutputMessage['content'][number], { type: 'output_text' }> }> {
    const found = [...this.parts.entries()]
      .sort(([a], [b]) => a - b)
      .flatMap(([index, where]) => {
        const part = where.item.type === 'message' ? where.item.content[where.contentIndex ?? -1] : undefined;
        return part?.type === 'output_text' ? [{ index, item: where.item as ResponseOutputMessage, contentIndex: where.contentIndex!, part, start: 0 }] : [];
      });
    let at = 0;
    for (const p of found) {
      p.start = at;
      at += p.part.text.length;
    }
    return found;
  }

  /**
   * A citation → the `output_text` part its start falls in (offsets made the part's own), with a
   * `response.output_text.annotation.added` while that part is open; one for a part already closed
   * reaches the final output only, and one before any text waits for the first text part.
   */
  private annotate(citation: UrlCitation, frames: SseFrame[]): void {
    const texts = this.textParts();
    if (!texts.length) {
      this.pendingAnnotations.push(citation);
      return;
    }
    const target = texts.find((t) => citation.startIndex < t.start + t.part.text.length) ?? texts[texts.length - 1];
    const annotation = outputTextCitation(citation, target.start);
    const annotationIndex = target.part.annotations.push(annotation) - 1;
    const open = this.open;
    if (open?.kind !== 'message' || open.part?.index !== target.index) return;
    frames.push(this.frame({ type: 'response.output_text.annotation.added', item_id: open.item.id, output_index: open.outputIndex, content_index: open.part.contentIndex, annotation_index: annotationIndex, annotation: { ...annotation } }));
  }

  /** The open reasoning item of part `index`, opened if new; undefined for a part already closed. */
  private reasoningAt(index: number, id: string | undefined, frames: SseFrame[]): Extract<OpenItem, { kind: 'reasoning' }> | undefined {
    if (this.open?.kind === 'reasoning' && this.open.part === index) return this.open;
    if (this.parts.has(index)) return undefined;
    this.close('completed', frames);
    const outputIndex = this.output.length;
    const item: ResponseReasoningItem = { id: id ?? this.options.idFor('rs', outputIndex), type: 'reasoning', summary: [], status: 'in_progress' };
    const state: ReasoningState = { text: '' };
    this.output.push(item);
    this.parts.set(index, { item, state });
    this.open = { kind: 'reasoning', outputIndex, item, part: index, state, summaryOpen: false };
    frames.push(this.frame({ type: 'response.output_item.added', output_index: outputIndex, item: { ...item, summary: [] } }));
    return this.open;
  }

  private reasoningState(index: number, id: string | undefined, frames: SseFrame[]): ReasoningState {
    return this.reasoningAt(index, id, frames)?.state ?? this.parts.get(index)?.state ?? { text: '' };
  }

  private closePart(open: Extract<OpenItem, { kind: 'message' }>, frames: SseFrame[]): void {
    if (!open.part) return;
    const part = open.item.content[open.part.contentIndex];
    const at = { item_id: open.item.id, output_index: open.outputIndex, content_index: open.part.contentIndex };
    frames.push(this.frame(part.type === 'output_text' ? { type: 'response.output_text.done', ...at, text: part.text, logprobs: (part.logprobs ?? []).map(eventLogprob) } : { type: 'response.refusal.done', ...at, refusal: part.refusal }));
    frames.push(this.frame({ type: 'response.content_part.done', ...at, part: structuredClone(part) }));
    open.part = undefined;
  }

  private close(status: 'completed' | 'incomplete', frames: SseFrame[]): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    open.item.status = status;
    if (open.kind === 'message') {
      this.closePart(open, frames);
      frames.push(this.frame({ type: 'response.output_item.done', output_index: open.outputIndex, item: structuredClone(open.item) }));
      return;
    }
    if (open.kind === 'function_call') {
      frames.push(this.frame({ type: 'response.function_call_arguments.done', item_id: open.item.id, output_index: open.outputIndex, name: open.item.name, arguments: open.item.arguments }));
      frames.push(this.frame({ type: 'response.output_item.done', output_index: open.outputIndex, item: { ...open.item } }));
      return;
    }
    const at = { item_id: open.item.id, output_index: open.outputIndex, summary_index: 0 };
    if (open.summaryOpen) {
      frames.push(this.frame({ type: 'response.reasoning_summary_text.done', ...at, text: open.state.text }));
      frames.push(this.frame({ type: 'response.reasoning_summary_part.done', ...at, part: { type: 'summary_text', text: open.state.text } }));
    }
    frames.push(this.frame({ type: 'response.output_item.done', output_index: open.outputIndex, item: this.reasoningItem(open.item.id, status) }));
  }
}

/**
 * A stored response as the stream that made it sent it (`GET /v1/responses/{id}?stream=true`):
 * the same events, numbered from 0, ending with the stored response itself. `includeEncrypted`
 * defaults to what the stored items show.
 */
export function replayResponseFrames(response: ResponsesObject, includeEncrypted = response.output.some((item) => item.type === 'reasoning' && item.encrypted_content != null)): SseFrame[] {
  const { usage: _usage, ...rest } = response;
  const shell: ResponsesObject = { ...rest, status: 'in_progress', completed_at: null, error: null, incomplete_details: null, output: [] };
  const includeLogprobs = response.output.some((item) => item.type === 'message' && item.content.some((c) => c.type === 'output_text' && (c.logprobs?.length ?? 0) > 0));
  const encoder = new ResponsesEventEncoder(shell, { idFor: (_prefix, position) => response.output[position]?.id ?? '', includeEncrypted, includeLogprobs });
  const frames = replayEvents(decodeResponse(response)).flatMap((event) => encoder.push(event));
  encoder.stored(response);
  if (response.status !== 'failed') return [...frames, ...encoder.ended()];
  return [...frames, ...encoder.failed({ status: response.error?.code === 'rate_limit_exceeded' ? 429 : 500, type: 'api_error', code: response.error?.code ?? null, param: null, message: response.error?.message ?? '' })];
}

/** A stored answer's events as its stream sent them: each text part's logprobs ahead of its text (on its delta), its citations after it. */
function replayEvents(answer: Answer): AnswerEvent[] {
  const extras = textPartExtras(answer);
  return answerEventsOf(answer).flatMap((event): AnswerEvent[] => {
    if (event.type === 'logprobs' || event.type === 'annotation') return [];
    const x = event.type === 'text' ? extras.get(event.index) : undefined;
    if (!x) return [event];
    return [
      ...(x.logprobs.length ? [{ type: 'logprobs' as const, content: x.logprobs }] : []),
      event,
      ...x.annotations.map((annotation) => ({ type: 'annotation' as const, annotation })),
    ];
  });
}

/** The spec's `ResponseErrorCode` has no word for itapi's own codes: a limit is `rate_limit_exceeded`, the rest `server_error`. */
function responseErrorCode(status: number): 'rate_limit_exceeded' | 'server_error' {
  return status === 429 ? 'rate_limit_exceeded' : 'server_error';
}

/**
 * How a Responses stream ends (`ended`: the open item closed, then `response.completed` or
 * `response.incomplete`) or fails after its first byte (`response.failed`); each carries the
 * response the endpoint stored first (`encoder.stored(...)`), else the encoder's own.
 */
export function responsesStreamTerminals(encoder: ResponsesEventEncoder): StreamTerminals {
  return { ended: () => encoder.ended(), failed: (error) => encoder.failed(error) };
}
