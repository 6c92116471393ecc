import type { z } from 'zod';
import { zodOnFirstUse } from './zod';
import { GatewayError, invalidRequest } from './errors';

/** The Chat Completions request as the gateway accepts it; unknown top-level fields are kept. */
/**
 * The parts, and each schema built the first time it is asked for: a request of the common
 * shapes needs only the shell, one with any other message only the whole schema.
 */
function buildChatCompletionRequestSchema() {
  const { z } = zodOnFirstUse();
  const { message, request } = chatSchemaParts();
  let full: ReturnType<typeof request<ReturnType<typeof z.array<typeof message>>>> | undefined;
  let shell: ReturnType<typeof request<ReturnType<typeof z.array<ReturnType<typeof z.unknown>>>>> | undefined;
  return {
    message,
    full: () => (full ??= request(z.array(message).min(1))),
    shell: () => (shell ??= request(z.array(z.unknown()).min(1))),
  };
}

/**
 * The request's schema with its `messages` schema given: the whole request's (each message
 * checked by zod), or the shell `parseChatCompletionRequest` checks the rest of a request with
 * when every message was taken as it is (`plainMessage`).
 */
function chatSchemaParts() {
  const { z } = zodOnFirstUse();
  const nullable = <T extends z.ZodTypeAny>(schema: T) => schema.nullable().optional();
  const int = () => z.number().int();

  const textPart = z.object({ type: z.literal('text'), text: z.string() });
  const imagePart = z.object({
    type: z.literal('image_url'),
    image_url: z.object({ url: z.string().min(1), detail: z.enum(['auto', 'low', 'high']).optional() }),
  });
  const refusalPart = z.object({ type: z.literal('refusal'), refusal: z.string() });

  const textContent = z.union([z.string(), z.array(textPart).min(1)]);
  const userContent = z.union([z.string(), z.array(z.discriminatedUnion('type', [textPart, imagePart])).min(1)]);

  const toolCall = z.object({
    id: z.string().min(1),
    type: z.literal('function'),
    function: z.object({ name: z.string().min(1), arguments: z.string() }),
  });

  const thinkingBlock = z.discriminatedUnion('type', [
    z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string().optional() }),
    z.object({ type: z.literal('redacted_thinking'), data: z.string() }),
  ]);

  const message = z.discriminatedUnion('role', [
    z.object({ role: z.literal('system'), content: textContent, name: z.string().optional() }),
    z.object({ role: z.literal('developer'), content: textContent, name: z.string().optional() }),
    z.object({ role: z.literal('user'), content: userContent, name: z.string().optional() }),
    z.object({
      role: z.literal('assistant'),
      content: nullable(z.union([z.string(), z.array(z.discriminatedUnion('type', [textPart, refusalPart]))])),
      name: z.string().optional(),
      refusal: nullable(z.string()),
      tool_calls: z.array(toolCall).optional(),
      function_call: nullable(z.object({ name: z.string(), arguments: z.string() })),
      // The provider's thinking as the gateway answered it (extension fields, LiteLLM's names): sent back, it keeps Claude thinking on a tool turn.
      reasoning_content: nullable(z.string()),
      thinking_blocks: nullable(z.array(thinkingBlock)),
    }),
    z.object({ role: z.literal('tool'), content: textContent, tool_call_id: z.string().min(1) }),
    z.object({ role: z.literal('function'), name: z.string().min(1), content: z.string().nullable() }),
  ]);

  const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 characters of a-z, A-Z, 0-9, _ and -');

  const tool = z.object({
    type: z.literal('function'),
    function: z.object({
      name: functionName,
      description: z.string().optional(),
      parameters: z.record(z.unknown()).optional(),
      strict: nullable(z.boolean()),
    }),
  });

  const toolChoice = z.union([
    z.enum(['none', 'auto', 'required']),
    z.object({ type: z.literal('function'), function: z.object({ name: functionName }) }),
  ]);

  const responseFormat = z.discriminatedUnion('type', [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: functionName,
        description: z.string().optional(),
        schema: z.record(z.unknown()).optional(),
        strict: nullable(z.boolean()),
      }),
    }),
  ]);

  const request = <M extends z.ZodTypeAny>(messages: M) => z
    .object({
      model: z.string().min(1),
      messages,
      stream: nullable(z.boolean()),
      stream_options: nullable(z.object({ include_usage: z.boolean().optional() })),
      temperature: nullable(z.number().min(0).max(2)),
      top_p: nullable(z.number().min(0).max(1)),
      max_tokens: nullable(int().min(1)),
      max_completion_tokens: nullable(int().min(1)),
      frequency_penalty: nullable(z.number().min(-2).max(2)),
      presence_penalty: nullable(z.number().min(-2).max(2)),
      stop: nullable(z.union([z.string(), z.array(z.string()).min(1).max(4)])),
      n: nullable(int().min(1).max(128)),
      seed: nullable(int()),
      user: z.string().optional(),
      tools: z.array(tool).max(128).optional(),
      tool_choice: toolChoice.optional(),
      parallel_tool_calls: z.boolean().optional(),
      response_format: responseFormat.optional(),
      logprobs: nullable(z.boolean()),
      top_logprobs: nullable(int().min(0).max(20)),
    })
    .passthrough()
    .superRefine((req, ctx) => {
      if (req.top_logprobs != null && req.logprobs !== true) {
        ctx.addIssue({ code: 'custom', path: ['top_logprobs'], message: "requires 'logprobs' to be true" });
      }
      if (req.stream_options != null && req.stream !== true) {
        ctx.addIssue({ code: 'custom', path: ['stream_options'], message: "is only allowed when 'stream' is true" });
      }
      const choice = req.tool_choice;
      if (choice !== undefined && choice !== 'none' && !req.tools?.length) {
        ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: "is only allowed when 'tools' are specified" });
      }
      if (typeof choice === 'object' && req.tools && !req.tools.some((t) => t.function.name === choice.function.name)) {
        ctx.addIssue({ code: 'custom', path: ['tool_choice', 'function', 'name'], message: 'names no function in tools' });
      }
    });
  return { message, request };
}

let chatSchemas: ReturnType<typeof buildChatCompletionRequestSchema> | undefined;

/** Built on first use, not at load: zod schemas were a large share of the chat bundle's require (docs/BENCHMARKS.md, "Cold start"). */
function chatSchemasOnFirstUse(): ReturnType<typeof buildChatCompletionRequestSchema> {
  return (chatSchemas ??= buildChatCompletionRequestSchema());
}

/** The whole Chat Completions request's schema: the one definition of what the gateway accepts. */
export function chatCompletionRequestSchema(): ReturnType<ReturnType<typeof buildChatCompletionRequestSchema>['full']> {
  return chatSchemasOnFirstUse().full();
}

/** One message's schema (the full schema's `messages[i]`). */
export function chatMessageSchema(): ReturnType<typeof buildChatCompletionRequestSchema>['message'] {
  return chatSchemasOnFirstUse().message;
}

export type ChatCompletionRequest = z.infer<ReturnType<typeof chatCompletionRequestSchema>>;
export type ChatMessage = ChatCompletionRequest['messages'][number];

/** `messages[1].content[0].type` from zod's path. */
export function formatParam(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = root;
  for (const part of path) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, part)) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[part];
  }
  return cur;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Validates a parsed JSON body; throws a 400 GatewayError naming the first offending field.
 *
 * zod (3) builds each node's path and result as it goes: on a coding agent's history of a
 * hundred messages, cold, it was the largest step before the upstream call (docs/BENCHMARKS.md,
 * "The long prompt, thirteenth pass"). So a request of the common shape is taken whole without
 * zod (`plainChatRequest`); otherwise the messages of the shapes clients send (`plainMessage`)
 * are taken as zod would give them and the rest is checked by the schema (`parseTakingMessages`).
 * `test/contract/request-plain-request.test.ts` and `request-plain-messages.test.ts` hold both
 * to the whole schema's answer for any request.
 */
export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  const plain = plainChatRequest(body);
  if (plain) return plain;
  const { full, shell } = chatSchemasOnFirstUse();
  return parseTakingMessages(full, shell, plainMessages, body);
}

/**
 * A request's answer as `whole()` gives it (the value, or its first issue as the 400 `issueError`
 * words): when `take` takes every item of the array `field` (zod's value for each, built without
 * zod), the rest is checked by `shell()` (the same schema with `field` any array, non-empty where
 * the whole schema asks for it) and the items are `take`'s; otherwise, or when the shell refuses,
 * `whole()` checks it all. Chat's and Messages' `messages`, Responses' `input`. The schemas are
 * asked for only when used (each is built on first use).
 */
export function parseTakingMessages<T extends z.ZodTypeAny>(
  whole: () => T,
  shell: () => z.ZodTypeAny,
  take: (items: unknown[]) => unknown[] | undefined,
  body: unknown,
  issueError?: (issue: z.ZodIssue, body: unknown) => GatewayError,
  field = 'messages',
): z.output<T> {
  const items = isPlain(body) && Object.prototype.hasOwnProperty.call(body, field) ? body[field] : undefined;
  if (Array.isArray(items) && items.length) {
    const taken = take(items);
    if (taken) {
      const result = shell().safeParse(body);
      if (result.success) return { ...result.data, [field]: taken };
    }
  }
  return parseRequestBody(whole(), body, issueError);
}

/** zod leaves a key named `__proto__` out of the objects it builds: an object with one goes to zod. */
export const hasProtoKey = (x: Plain): boolean => Object.prototype.hasOwnProperty.call(x, '__proto__');

/** `first`'s keys, then every other key of `x` in its order: what a passthrough schema gives. */
export function passedThrough(x: Plain, first: Plain): Plain {
  for (const key in x) if (!Object.prototype.hasOwnProperty.call(first, key)) first[key] = x[key];
  return first;
}

const plainMessages = (messages: unknown[]): ChatMessage[] | undefined => takeAll(messages, plainMessage);

/** Each item as `take` takes it, or undefined when it takes any one not (Chat's messages, Responses' input items). */
export function takeAll<T>(items: unknown[], take: (item: unknown) => T | undefined): T[] | undefined {
  const out: T[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const taken = take(items[i]);
    if (taken === undefined) return undefined;
    out[i] = taken;
  }
  return out;
}

/** A JSON object (not null, not an array). */
export type Plain = Record<string, unknown>;
export const isPlain = (x: unknown): x is Plain => x !== null && typeof x === 'object' && !Array.isArray(x);
const isText = (x: unknown): x is string => typeof x === 'string';
/** A non-empty string (zod's `z.string().min(1)`). */
export const isName = (x: unknown): x is string => typeof x === 'string' && x.length > 0;

/** An assistant message's keys that zod checks and keeps, and `plainMessage` does not take: such a message goes to zod. */
const ASSISTANT_KEPT_BY_ZOD = ['refusal', 'function_call', 'reasoning_content', 'thinking_blocks'];

/** Text parts (`{type: 'text', text}` only), copied; undefined for anything else. */
function textParts(x: unknown[]): Array<{ type: 'text'; text: string }> | undefined {
  const out: Array<{ type: 'text'; text: string }> = new Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const part = x[i];
    if (!isPlain(part) || part.type !== 'text' || !isText(part.text)) return undefined;
    out[i] = { type: 'text', text: part.text };
  }
  return out;
}

/** A string, or at least one text part (a system, developer, user or tool message's content). */
function textContent(x: unknown): string | Array<{ type: 'text'; text: string }> | undefined {
  if (isText(x)) return x;
  return Array.isArray(x) && x.length > 0 ? textParts(x) : undefined;
}

/**
 * A message of the shapes clients send, as zod's message schema would give it: its keys in the
 * schema's order, and only those (zod strips the others): system, developer, user and tool
 * messages with text content; assistant messages with text or null content and function tool
 * calls. Undefined for anything else (images, refusals, thinking, a value zod would refuse),
 * which zod then checks.
 */
export function plainMessage(x: unknown): ChatMessage | undefined {
  if (!isPlain(x)) return undefined;
  const role = x.role;
  if (role === 'system' || role === 'developer' || role === 'user') {
    if ('name' in x && !isText(x.name)) return undefined;
    const content = textContent(x.content);
    if (content === undefined) return undefined;
    return ('name' in x ? { role, content, name: x.name } : { role, content }) as ChatMessage;
  }
  if (role === 'tool') {
    if (!isName(x.tool_call_id)) return undefined;
    const content = textContent(x.content);
    return content === undefined ? undefined : { role, content, tool_call_id: x.tool_call_id };
  }
  if (role !== 'assistant' || ('name' in x && !isText(x.name)) || ASSISTANT_KEPT_BY_ZOD.some((key) => key in x)) return undefined;
  const out: Plain = { role };
  if ('content' in x) {
    const content = x.content === null || isText(x.content) ? x.content : Array.isArray(x.content) ? textParts(x.content) : undefined;
    if (content === undefined) return undefined;
    out.content = content;
  }
  if ('name' in x) out.name = x.name;
  if ('tool_calls' in x) {
    if (!Array.isArray(x.tool_calls)) return undefined;
    const calls: unknown[] = new Array(x.tool_calls.length);
    for (let i = 0; i < x.tool_calls.length; i++) {
      const call = x.tool_calls[i];
      if (!isPlain(call) || !isName(call.id) || call.type !== 'function' || !isPlain(call.function)) return undefined;
      const fn = call.function;
      if (!isName(fn.name) || !isText(fn.arguments)) return undefined;
      calls[i] = { id: call.id, type: 'function', function: { name: fn.name, arguments: fn.arguments } };
    }
    out.tool_calls = calls;
  }
  return out as ChatMessage;
}

/** The request schema's own keys, in its order (`test/contract/request-plain-request.test.ts` holds it to the schema's). */
export const CHAT_REQUEST_KEYS = [
  'model', 'messages', 'stream', 'stream_options', 'temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'frequency_penalty',
  'presence_penalty', 'stop', 'n', 'seed', 'user', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'logprobs', 'top_logprobs',
] as const;
const CHAT_REQUEST_KEY_SET: ReadonlySet<string> = new Set(CHAT_REQUEST_KEYS);

const nullOr = (check: (x: unknown) => boolean) => (x: unknown) => x === null || check(x);
const within = (lo: number, hi: number) => nullOr((x) => typeof x === 'number' && x >= lo && x <= hi);
const intFrom = (lo: number, hi = Infinity) => nullOr((x) => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi);

/** The schema's checks of the top-level fields `plainChatRequest` takes as they come (the rest of the schema's fields go to zod). */
const PLAIN_FIELDS: Record<string, (x: unknown) => boolean> = {
  stream: nullOr((x) => typeof x === 'boolean'),
  temperature: within(0, 2),
  top_p: within(0, 1),
  max_tokens: intFrom(1),
  max_completion_tokens: intFrom(1),
  frequency_penalty: within(-2, 2),
  presence_penalty: within(-2, 2),
  stop: nullOr((x) => isText(x) || (Array.isArray(x) && x.length >= 1 && x.length <= 4 && x.every(isText))),
  n: intFrom(1, 128),
  seed: intFrom(-Infinity),
  user: isText,
  parallel_tool_calls: (x) => typeof x === 'boolean',
};

/**
 * A request of the common shape taken whole without zod, as the whole schema would give it: its
 * messages taken (`plainMessages`), the top-level fields of `PLAIN_FIELDS` checked as the schema
 * checks them, `stream_options` only with `stream: true` (as the schema refines it), the schema's
 * keys in its order and every other key after in its order (the schema passes them through).
 * Undefined for anything else (tools, a response format, logprobs, a value the schema refuses, a
 * key named `__proto__`), which the schema then checks: zod is neither built nor walked for a
 * plain chat request (docs/BENCHMARKS.md, "The first byte, fourteenth pass").
 */
export function plainChatRequest(body: unknown): ChatCompletionRequest | undefined {
  if (!isPlain(body) || !isName(body.model) || !Array.isArray(body.messages) || !body.messages.length || hasProtoKey(body)) return undefined;
  for (const key in body) {
    if (key === 'model' || key === 'messages' || !CHAT_REQUEST_KEY_SET.has(key)) continue;
    if (key === 'stream_options') {
      const options = body.stream_options;
      if (options !== null && (!isPlain(options) || body.stream !== true || ('include_usage' in options && typeof options.include_usage !== 'boolean'))) return undefined;
    } else if (!Object.prototype.hasOwnProperty.call(PLAIN_FIELDS, key) || !PLAIN_FIELDS[key](body[key])) return undefined;
  }
  const messages = plainMessages(body.messages);
  if (!messages) return undefined;
  const out: Plain = {};
  for (const key of CHAT_REQUEST_KEYS) {
    if (!(key in body)) continue;
    const x = body[key];
    if (key === 'messages') out.messages = messages;
    // zod's objects and arrays are its own copies: `stream_options` keeps only its one key.
    else if (key === 'stream_options') out.stream_options = x === null ? null : 'include_usage' in (x as Plain) ? { include_usage: (x as Plain).include_usage } : {};
    else if (key === 'stop' && Array.isArray(x)) out.stop = [...x];
    else out[key] = x;
  }
  for (const key in body) if (!CHAT_REQUEST_KEY_SET.has(key)) out[key] = body[key];
  return out as ChatCompletionRequest;
}

/**
 * Validates a parsed JSON body against any endpoint's request schema; throws a 400 GatewayError
 * naming the first offending field, in the same words as for chat completions.
 */
export function parseRequestBody<T extends z.ZodTypeAny>(
  schema: T,
  body: unknown,
  /** How the first zod issue is worded (the Messages endpoint words it as Anthropic does). */
  issueError: (issue: z.ZodIssue, body: unknown) => GatewayError = zodIssueError,
): z.output<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidRequest('The request body must be a JSON object.', null, 'invalid_type');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  throw issueError(result.error.issues[0], body);
}

/** Follows a union's failures into the branch that matched the value's shape. */
function resolveIssue(issue: z.ZodIssue): z.ZodIssue {
  if (issue.code !== 'invalid_union') return issue;
  let best: z.ZodIssue | undefined;
  for (const branch of issue.unionErrors) {
    const first = branch.issues[0];
    if (!first) continue;
    const candidate = resolveIssue(first);
    // A type mismatch at the union itself means the branch did not fit the value at all.
    const misfit = candidate.code === 'invalid_type' && candidate.path.length === issue.path.length;
    if (!misfit && (!best || candidate.path.length > best.path.length)) best = candidate;
  }
  return best ?? issue;
}

/** A zod issue as the 400 the gateway answers: `param` names the field, the message says what is wrong. */
export function zodIssueError(original: z.ZodIssue, body: unknown): GatewayError {
  const issue = resolveIssue(original);
  const param = formatParam(issue.path);
  const value = valueAt(body, issue.path);
  if (value === undefined && issue.code !== 'custom') {
    return invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  }
  if (issue.code === 'invalid_type') {
    return invalidRequest(
      `Invalid type for '${param}': expected ${issue.expected}, but got ${describe(value)}.`,
      param,
      'invalid_type',
    );
  }
  const detail =
    issue.code === 'invalid_union_discriminator' || issue.code === 'invalid_literal' || issue.code === 'invalid_enum_value'
      ? `expected one of ${optionsOf(issue).map((o) => `'${String(o)}'`).join(', ')}`
      : issue.message.charAt(0).toLowerCase() + issue.message.slice(1);
  return invalidRequest(`Invalid value for '${param}': ${detail}.`, param, 'invalid_value');
}

function optionsOf(issue: z.ZodIssue): unknown[] {
  if (issue.code === 'invalid_union_discriminator' || issue.code === 'invalid_enum_value') return [...issue.options];
  if (issue.code === 'invalid_literal') return [issue.expected];
  return [];
}
