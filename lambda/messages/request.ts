import type { z as zodTypes } from 'zod';
import { zodOnFirstUse } from '../contract/zod';
import { invalidRequest, type GatewayError } from '../contract/errors';
import { formatParam, parseRequestBody } from '../contract/request';
import type { MessagesWirePrompt, MessagesWireRequest } from '../codecs/anthropic-messages';

// zod through the one `require` every schema builder uses, so the bundle holds one copy of it; this
// module itself loads on the first Messages request (lambda/app.ts).
const { z } = zodOnFirstUse();

/** A validated `POST /v1/messages` body: the SDK's types (the Messages codec's), beta fields kept as sent. */
export type MessagesRequest = MessagesWireRequest;
/** A validated `count_tokens` body. */
export type MessagesPrompt = MessagesWirePrompt;

// Known block types are checked field by field; any other type (document, search_result, server
// tool blocks, whatever Anthropic adds) is kept as sent: the Anthropic route takes it, and a
// translated route refuses it by name.

const textBlock = z.object({ type: z.literal('text'), text: z.string() }).passthrough();

const imageBlock = z
  .object({
    type: z.literal('image'),
    source: z.discriminatedUnion('type', [
      z.object({ type: z.literal('base64'), media_type: z.enum(['image/jpeg', 'image/png', 'image/gif', 'image/webp']), data: z.string().min(1) }).passthrough(),
      z.object({ type: z.literal('url'), url: z.string().min(1) }).passthrough(),
      z.object({ type: z.literal('file'), file_id: z.string().min(1) }).passthrough(),
    ]),
  })
  .passthrough();

const toolUseBlock = z
  .object({ type: z.literal('tool_use'), id: z.string().min(1), name: z.string().min(1), input: z.record(z.unknown()) })
  .passthrough();

const thinkingBlock = z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string() }).passthrough();
const redactedThinkingBlock = z.object({ type: z.literal('redacted_thinking'), data: z.string() }).passthrough();

/** A block of any type, checked against its type's schema when the type is one the gateway reads. */
const block: zodTypes.ZodType<{ type: string }> = z.lazy(() =>
  z
    .object({ type: z.string().min(1) })
    .passthrough()
    .superRefine((value, ctx) => {
      const schema = KNOWN_BLOCKS[value.type];
      if (!schema) return;
      const result = schema.safeParse(value);
      if (!result.success) for (const issue of result.error.issues) ctx.addIssue(issue);
    }),
);

const toolResultBlock = z
  .object({
    type: z.literal('tool_result'),
    tool_use_id: z.string().min(1),
    content: z.union([z.string(), z.array(block)]).optional(),
    is_error: z.boolean().optional(),
  })
  .passthrough();

const KNOWN_BLOCKS: Record<string, zodTypes.ZodTypeAny> = {
  text: textBlock,
  image: imageBlock,
  tool_use: toolUseBlock,
  tool_result: toolResultBlock,
  thinking: thinkingBlock,
  redacted_thinking: redactedThinkingBlock,
};

const message = z
  .object({
    role: z.enum(['user', 'assistant', 'system']),
    content: z.union([z.string(), z.array(block)]),
  })
  .passthrough();

const tool = z
  .object({
    name: z.string().min(1).max(128),
    type: z.string().optional(),
    description: z.string().optional(),
    input_schema: z.record(z.unknown()).optional(),
    strict: z.boolean().optional(),
  })
  .passthrough()
  .superRefine((value, ctx) => {
    // Custom tools carry their schema; Anthropic-defined and server tools (`bash_20250124`, `web_search_…`) do not.
    if ((value.type === undefined || value.type === 'custom') && value.input_schema === undefined) {
      ctx.addIssue({ code: 'invalid_type', expected: 'object', received: 'undefined', path: ['input_schema'], message: 'Required' });
    }
  });

const parallel = { disable_parallel_tool_use: z.boolean().optional() };
const toolChoice = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto'), ...parallel }).passthrough(),
  z.object({ type: z.literal('any'), ...parallel }).passthrough(),
  z.object({ type: z.literal('tool'), name: z.string().min(1), ...parallel }).passthrough(),
  z.object({ type: z.literal('none') }).passthrough(),
]);

const prompt = {
  model: z.string().min(1),
  messages: z.array(message).min(1),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  tools: z.array(tool).optional(),
  tool_choice: toolChoice.optional(),
  thinking: z.object({ type: z.string().min(1), budget_tokens: z.number().int().min(0).optional() }).passthrough().optional(),
  output_config: z
    .object({
      effort: z.string().optional(),
      format: z.object({ type: z.literal('json_schema'), schema: z.record(z.unknown()) }).passthrough().nullable().optional(),
    })
    .passthrough()
    .optional(),
};

const countTokensSchema = z.object(prompt).passthrough();

const messagesSchema = z
  .object({
    ...prompt,
    max_tokens: z.number().int().min(1),
    stream: z.boolean().optional(),
    temperature: z.number().min(0).max(1).optional(),
    top_p: z.number().min(0).max(1).optional(),
    top_k: z.number().int().min(0).optional(),
    stop_sequences: z.array(z.string()).optional(),
    metadata: z.object({ user_id: z.string().nullable().optional() }).passthrough().optional(),
  })
  .passthrough();

/** `POST /v1/messages`: throws a 400 naming the first offending field, as Anthropic does. */
export function parseMessagesRequest(body: unknown): MessagesRequest {
  return parseWith(messagesSchema, body) as MessagesRequest;
}

/** `POST /v1/messages/count_tokens`: the prompt fields only (no `max_tokens`). */
export function parseCountTokensRequest(body: unknown): MessagesPrompt {
  return parseWith(countTokensSchema, body) as MessagesPrompt;
}

function parseWith(schema: zodTypes.ZodTypeAny, body: unknown): unknown {
  return parseRequestBody(schema, body, issueError);
}

/** Anthropic's errors have no `param`: the field goes first in the message (`messages[0].content: Field required`). */
function issueError(original: zodTypes.ZodIssue): GatewayError {
  const issue = deepestIssue(original);
  const param = formatParam(issue.path) || 'body';
  if (issue.code === 'invalid_type' && issue.received === 'undefined') {
    return invalidRequest(`${param}: Field required`, param, 'missing_required_parameter');
  }
  if (issue.code === 'invalid_type') {
    return invalidRequest(`${param}: Input should be of type ${issue.expected}, not ${issue.received}`, param, 'invalid_type');
  }
  return invalidRequest(`${param}: ${issue.message}`, param, 'invalid_value');
}

/** A union's failure is reported at the branch that got furthest into the value. */
function deepestIssue(issue: zodTypes.ZodIssue): zodTypes.ZodIssue {
  if (issue.code !== 'invalid_union') return issue;
  let best: zodTypes.ZodIssue = issue;
  for (const branch of issue.unionErrors) {
    const first = branch.issues[0];
    if (!first) continue;
    const candidate = deepestIssue(first);
    if (candidate.path.length > best.path.length) best = candidate;
  }
  return best;
}
