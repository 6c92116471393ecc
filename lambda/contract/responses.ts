import type { z } from 'zod';
import { zodOnFirstUse } from './zod';
import { invalidRequest } from './errors';
import { hasProtoKey, isName, isPlain, parseRequestBody, parseTakingMessages, passedThrough, takeAll, zodIssueError, type Plain } from './request';

// The Responses wire types itapi produces, named as the official SDK (generated from the spec) names them.
export type {
  ResponseFunctionToolCall,
  ResponseFunctionToolCallItem,
  ResponseFunctionToolCallOutputItem,
  ResponseInputMessageItem,
  ResponseOutputMessage,
  ResponseOutputRefusal,
  ResponseOutputText,
  ResponseReasoningItem,
  ResponseStreamEvent,
  ResponseUsage,
} from 'openai/resources/responses/responses';
import type {
  Response as SdkResponse,
  ResponseFunctionToolCall,
  ResponseFunctionToolCallOutputItem,
  ResponseInputMessageItem,
  ResponseOutputMessage,
  ResponseReasoningItem,
} from 'openai/resources/responses/responses';

/** What itapi puts in `output`: reasoning items (the provider's thinking), assistant messages and function calls, never hosted-tool items. */
export type OutputItem = ResponseOutputMessage | (ResponseFunctionToolCall & { id: string; status: 'in_progress' | 'completed' | 'incomplete' }) | ResponseReasoningItem;

/** The `Response` object as itapi answers it (the SDK's `output_text` is the SDK's own convenience, not on the wire). */
export type ResponseObject = Omit<SdkResponse, 'output_text' | 'output'> & { output: OutputItem[]; store?: boolean; max_tool_calls?: number | null };

/** An item as `GET /v1/responses/{id}/input_items` lists it: every item has an id (reasoning items too, kept for the provider that thought them). */
export type StoredItem =
  | ResponseInputMessageItem
  | ResponseOutputMessage
  | (ResponseFunctionToolCall & { id: string; status: 'completed' | 'incomplete' | 'in_progress' })
  | ResponseFunctionToolCallOutputItem
  | ResponseReasoningItem;

/** The input items' and function tools' schemas (their types are exported below). */
function buildItemSchemas() {
  const { z } = zodOnFirstUse();
  const nullish = <T extends z.ZodTypeAny>(schema: T) => schema.nullish();
  const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 characters of a-z, A-Z, 0-9, _ and -');

  const inputText = z.object({ type: z.literal('input_text'), text: z.string() }).passthrough();
  const inputImage = z
    .object({
      type: z.literal('input_image'),
      image_url: nullish(z.string().min(1)),
      file_id: nullish(z.string()),
      detail: nullish(z.enum(['low', 'high', 'auto', 'original'])),
    })
    .passthrough();
  const inputFile = z.object({ type: z.literal('input_file') }).passthrough();
  const outputText = z.object({ type: z.literal('output_text'), text: z.string() }).passthrough();
  const refusal = z.object({ type: z.literal('refusal'), refusal: z.string() }).passthrough();
  const contentPart = z.discriminatedUnion('type', [inputText, inputImage, inputFile, outputText, refusal]);

  const messageItem = z
    .object({
      type: z.literal('message'),
      id: nullish(z.string()),
      role: z.enum(['user', 'assistant', 'system', 'developer']),
      content: z.union([z.string(), z.array(contentPart)]),
    })
    .passthrough();

  const functionCallItem = z
    .object({
      type: z.literal('function_call'),
      id: nullish(z.string()),
      call_id: z.string().min(1),
      name: z.string().min(1),
      arguments: z.string(),
    })
    .passthrough();

  const functionCallOutputItem = z
    .object({
      type: z.literal('function_call_output'),
      id: nullish(z.string()),
      call_id: z.string().min(1),
      output: z.union([z.string(), z.array(contentPart)]),
    })
    .passthrough();

  const itemReference = z.object({ type: z.literal('item_reference'), id: z.string().min(1) }).passthrough();

  // Codex sends `content: null` on reasoning items, which the spec does not allow: accepted, never forwarded.
  const reasoningItem = z.object({ type: z.literal('reasoning'), id: nullish(z.string()) }).passthrough();

  const functionTool = z
    .object({
      type: z.literal('function'),
      name: functionName,
      description: nullish(z.string()),
      parameters: nullish(z.record(z.unknown())),
      strict: nullish(z.boolean()),
    })
    .passthrough();
  return { functionName, contentPart, messageItem, functionCallItem, functionCallOutputItem, itemReference, reasoningItem, functionTool };
}

type ItemSchemas = ReturnType<typeof buildItemSchemas>;

export type MessageItem = z.infer<ItemSchemas['messageItem']>;
export type ContentPart = z.infer<ItemSchemas['contentPart']>;
export type FunctionCallItem = z.infer<ItemSchemas['functionCallItem']>;
export type FunctionCallOutputItem = z.infer<ItemSchemas['functionCallOutputItem']>;
export type ItemReference = z.infer<ItemSchemas['itemReference']>;
/** An item of a kind no itapi route runs (hosted tool calls, compaction…): dropped, named in `x-itapi-ignored`. */
export type UnsupportedItem = { type: 'unsupported'; itemType: string };
export type InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ItemReference | z.infer<ItemSchemas['reasoningItem']> | UnsupportedItem;

export type FunctionTool = z.infer<ItemSchemas['functionTool']>;
/** A tool itapi cannot run (web_search, file_search, code_interpreter, namespace, custom…): dropped. */
export type HostedTool = { type: 'hosted'; toolType: string; name?: string; searchContextSize?: string };

/**
 * `POST /v1/responses` as itapi accepts it: lenient, as real clients send fields the spec lacks
 * or forbids (Codex's `client_metadata`, reasoning items with `content: null`, ids on input
 * messages); only what a route can use is forwarded.
 */
function buildCreateResponseRequestSchema() {
  const { z } = zodOnFirstUse();
  const nullish = <T extends z.ZodTypeAny>(schema: T) => schema.nullish();
  const { functionName, messageItem, functionCallItem, functionCallOutputItem, itemReference, reasoningItem, functionTool } = buildItemSchemas();

  const ITEM_SCHEMAS: Record<string, z.ZodTypeAny> = {
    message: messageItem,
    function_call: functionCallItem,
    function_call_output: functionCallOutputItem,
    item_reference: itemReference,
    reasoning: reasoningItem,
  };

  /** Picks the item's schema by `type`; messages and references may come without one (EasyInputMessage, ItemReferenceParam). */
  const inputItem = z
    .object({ type: nullish(z.string()) })
    .passthrough()
    .transform((item, ctx): InputItem => {
      const type = item.type ?? ('role' in item ? 'message' : 'id' in item ? 'item_reference' : undefined);
      if (type === undefined) {
        ctx.addIssue({ code: 'invalid_type', expected: 'string', received: 'undefined', path: ['type'] });
        return z.NEVER;
      }
      // Its own keys only: a type named as an Object.prototype member (`toString`) is a kind no route runs.
      const schema = Object.prototype.hasOwnProperty.call(ITEM_SCHEMAS, type) ? ITEM_SCHEMAS[type] : undefined;
      if (!schema) return { type: 'unsupported', itemType: type };
      const result = schema.safeParse({ ...item, type });
      if (!result.success) {
        for (const issue of result.error.issues) ctx.addIssue(issue as z.IssueData);
        return z.NEVER;
      }
      return result.data as InputItem;
    });

  const tool = z
    .object({ type: z.string().min(1), name: nullish(z.string()) })
    .passthrough()
    .transform((value, ctx): FunctionTool | HostedTool => {
      if (value.type !== 'function') {
        const size = (value as { search_context_size?: unknown }).search_context_size;
        return { type: 'hosted', toolType: value.type, ...(value.name ? { name: value.name } : {}), ...(typeof size === 'string' && { searchContextSize: size }) };
      }
      const result = functionTool.safeParse(value);
      if (!result.success) {
        for (const issue of result.error.issues) ctx.addIssue(issue as z.IssueData);
        return z.NEVER;
      }
      return result.data;
    });

  const toolChoice = z.union([
    z.enum(['none', 'auto', 'required']),
    z.object({ type: z.literal('function'), name: z.string().min(1) }).passthrough(),
    z
      .object({
        type: z.literal('allowed_tools'),
        mode: z.enum(['auto', 'required']),
        tools: z.array(z.object({ type: z.string(), name: nullish(z.string()) }).passthrough()),
      })
      .passthrough(),
    // Hosted-tool, MCP, custom, shell and apply_patch choices: they force a tool no route runs.
    z.object({ type: z.string().min(1), name: nullish(z.string()), server_label: nullish(z.string()) }).passthrough(),
  ]);

  const textFormat = z.discriminatedUnion('type', [
    z.object({ type: z.literal('text') }).passthrough(),
    z.object({ type: z.literal('json_object') }).passthrough(),
    z
      .object({
        type: z.literal('json_schema'),
        name: functionName,
        schema: z.record(z.unknown()),
        description: nullish(z.string()),
        strict: nullish(z.boolean()),
      })
      .passthrough(),
  ]);

  const request = <I extends z.ZodTypeAny>(items: I) => z
    .object({
      model: z.string().min(1),
      input: z.union([z.string(), z.array(items)]).optional(),
      instructions: nullish(z.string()),
      stream: nullish(z.boolean()),
      store: nullish(z.boolean()),
      background: nullish(z.boolean()),
      previous_response_id: nullish(z.string().min(1)),
      include: nullish(z.array(z.string())),
      tools: nullish(z.array(tool).max(512)),
      tool_choice: nullish(toolChoice),
      parallel_tool_calls: nullish(z.boolean()),
      text: nullish(z.object({ format: nullish(textFormat), verbosity: nullish(z.enum(['low', 'medium', 'high'])) }).passthrough()),
      reasoning: nullish(
        z
          .object({
            effort: nullish(z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max'])),
            summary: nullish(z.enum(['auto', 'concise', 'detailed'])),
          })
          .passthrough(),
      ),
      max_output_tokens: nullish(z.number().int().min(1)),
      max_tool_calls: nullish(z.number().int().min(0)),
      temperature: nullish(z.number().min(0).max(2)),
      top_p: nullish(z.number().min(0).max(1)),
      top_logprobs: nullish(z.number().int().min(0).max(20)),
      truncation: nullish(z.enum(['auto', 'disabled'])),
      metadata: nullish(z.record(z.string().max(512)).refine((m) => Object.keys(m).length <= 16, 'must have at most 16 keys')),
      user: nullish(z.string()),
      safety_identifier: nullish(z.string().max(64)),
      prompt_cache_key: nullish(z.string()),
      service_tier: nullish(z.string()),
      conversation: z.unknown().optional(),
      prompt: z.unknown().optional(),
    })
    .passthrough();
  let full: ReturnType<typeof request<typeof inputItem>> | undefined;
  let shell: ReturnType<typeof request<ReturnType<typeof z.unknown>>> | undefined;
  return {
    full: () => (full ??= request(inputItem)),
    shell: () => (shell ??= request(z.unknown())),
  };
}

let requestSchemas: ReturnType<typeof buildCreateResponseRequestSchema> | undefined;

/** Built on first use, not at load: the chat function's cold start does not pay for the Responses endpoint's schemas. */
function requestSchemasOnFirstUse(): ReturnType<typeof buildCreateResponseRequestSchema> {
  return (requestSchemas ??= buildCreateResponseRequestSchema());
}

/** The whole `POST /v1/responses` request's schema (zod checks every input item): the one definition of what the gateway accepts. */
export function createResponseRequestSchema(): ReturnType<ReturnType<typeof buildCreateResponseRequestSchema>['full']> {
  return requestSchemasOnFirstUse().full();
}

export type CreateResponseRequest = z.infer<ReturnType<typeof createResponseRequestSchema>>;
export type ToolChoice = NonNullable<CreateResponseRequest['tool_choice']>;
export type TextFormat = NonNullable<NonNullable<CreateResponseRequest['text']>['format']>;

/**
 * Validates a parsed `POST /v1/responses` body; throws a 400 naming the first offending field.
 * The input items of the kinds coding agents send (`plainInputItems`) are taken as zod would give
 * them, without zod, as Chat's messages are (`parseTakingMessages`, lambda/contract/request.ts).
 */
export function parseCreateResponseRequest(body: unknown): CreateResponseRequest {
  const { full, shell } = requestSchemasOnFirstUse();
  return refuseWhatNoRouteRuns(parseTakingMessages(full, shell, plainInputItems, body, zodIssueError, 'input'));
}

/** The whole schema's answer, zod checking every input item: what `parseCreateResponseRequest` gives, items taken or not (the tests hold it to that). */
export function parseWholeCreateResponseRequest(body: unknown): CreateResponseRequest {
  return refuseWhatNoRouteRuns(parseRequestBody(createResponseRequestSchema(), body));
}

function refuseWhatNoRouteRuns(request: CreateResponseRequest): CreateResponseRequest {
  if (request.background === true) {
    throw invalidRequest("Background mode is not supported by this gateway: send 'background': false (or leave it out).", 'background', 'unsupported_parameter');
  }
  if (request.conversation != null) {
    throw invalidRequest("'conversation' is not supported by this gateway: use 'previous_response_id' or send the history in 'input'.", 'conversation', 'unsupported_parameter');
  }
  if (request.prompt != null) {
    throw invalidRequest("Prompt templates ('prompt') are not supported by this gateway: send 'instructions' and 'input'.", 'prompt', 'unsupported_parameter');
  }
  if (request.input === undefined && !request.previous_response_id) {
    throw invalidRequest("Missing required parameter: 'input'.", 'input', 'missing_required_parameter');
  }
  return request;
}

/** A value zod's `nullish(z.string())` takes. */
const nullishString = (x: unknown): boolean => x === undefined || x === null || typeof x === 'string';
const MESSAGE_ROLES = new Set(['user', 'assistant', 'system', 'developer']);

/**
 * The input items of the kinds Codex and the SDKs send, as zod's schema gives them, without zod:
 * messages of text parts, function calls and their outputs, item references, reasoning items, and
 * items of a kind no route runs; each a new object with the item schema's keys first (in its
 * order) and every other key after in its order, as the passthrough schemas give them. zod (3)
 * walks every item twice (its `type`, then its kind's schema): cold, a long Codex history cost
 * more than anything else before the upstream call (docs/BENCHMARKS.md, "The long prompt,
 * fourteenth pass"). Undefined for anything else (an image, a `type` that is not a string, a key
 * named `__proto__`, a value the schemas refuse), which zod then checks and words.
 * `test/contract/responses-plain-items.test.ts` holds it to zod for any item.
 */
export function plainInputItems(items: unknown[]): InputItem[] | undefined {
  return takeAll(items, plainInputItem);
}

function plainInputItem(x: unknown): InputItem | undefined {
  if (!isPlain(x) || hasProtoKey(x)) return undefined;
  // EasyInputMessage and ItemReferenceParam may come without a type, as the schema reads them.
  const type = x.type === undefined ? ('role' in x ? 'message' : 'id' in x ? 'item_reference' : undefined) : x.type;
  if (typeof type !== 'string') return undefined;
  const first: Plain = { type };
  switch (type) {
    case 'message': {
      if (!nullishString(x.id) || !MESSAGE_ROLES.has(x.role as string)) return undefined;
      const content = itemContent(x.content);
      if (content === undefined) return undefined;
      if ('id' in x) first.id = x.id;
      first.role = x.role;
      first.content = content;
      break;
    }
    case 'function_call':
      if (!nullishString(x.id) || !isName(x.call_id) || !isName(x.name) || typeof x.arguments !== 'string') return undefined;
      if ('id' in x) first.id = x.id;
      first.call_id = x.call_id;
      first.name = x.name;
      first.arguments = x.arguments;
      break;
    case 'function_call_output': {
      if (!nullishString(x.id) || !isName(x.call_id)) return undefined;
      const output = itemContent(x.output);
      if (output === undefined) return undefined;
      if ('id' in x) first.id = x.id;
      first.call_id = x.call_id;
      first.output = output;
      break;
    }
    case 'item_reference':
      if (!isName(x.id)) return undefined;
      first.id = x.id;
      break;
    case 'reasoning':
      if (!nullishString(x.id)) return undefined;
      if ('id' in x) first.id = x.id;
      break;
    default:
      return { type: 'unsupported', itemType: type };
  }
  return passedThrough(x, first) as InputItem;
}

/** A message's content or a call's output: a string, or parts of text, refusals and files (an image goes to zod). */
function itemContent(x: unknown): string | Plain[] | undefined {
  if (typeof x === 'string') return x;
  if (!Array.isArray(x)) return undefined;
  const parts: Plain[] = new Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const part = x[i];
    if (!isPlain(part) || hasProtoKey(part)) return undefined;
    const type = part.type;
    if (type === 'input_text' || type === 'output_text') {
      if (typeof part.text !== 'string') return undefined;
      parts[i] = passedThrough(part, { type, text: part.text });
    } else if (type === 'refusal') {
      if (typeof part.refusal !== 'string') return undefined;
      parts[i] = passedThrough(part, { type, refusal: part.refusal });
    } else if (type === 'input_file') parts[i] = passedThrough(part, { type });
    else return undefined;
  }
  return parts;
}
