import type { z } from 'zod';
import { zodOnFirstUse } from './zod';
import { GatewayError, invalidRequest } from './errors';

/** The Chat Completions request as the gateway accepts it; unknown top-level fields are kept. */
function buildChatCompletionRequestSchema() {
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

  return z
    .object({
      model: z.string().min(1),
      messages: z.array(message).min(1),
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
}

let chatSchema: ReturnType<typeof buildChatCompletionRequestSchema> | undefined;

/** Built on first use, not at load: zod schemas were a large share of the chat bundle's require (docs/BENCHMARKS.md, "Cold start"). */
export function chatCompletionRequestSchema(): ReturnType<typeof buildChatCompletionRequestSchema> {
  return (chatSchema ??= buildChatCompletionRequestSchema());
}

export type ChatCompletionRequest = z.infer<ReturnType<typeof buildChatCompletionRequestSchema>>;
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

/** Validates a parsed JSON body; throws a 400 GatewayError naming the first offending field. */
export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  return parseRequestBody(chatCompletionRequestSchema(), body);
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
