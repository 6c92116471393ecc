import type { z as zodTypes } from 'zod';
import { zodOnFirstUse } from '../contract/zod';
import { invalidRequest, type GatewayError } from '../contract/errors';
import { formatParam, hasProtoKey, isName, isPlain, parseRequestBody, parseTakingMessages, passedThrough, type Plain } from '../contract/request';
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
      // Its own keys only: a type named as an Object.prototype member (`toString`) is a type the gateway does not read.
      const schema = Object.prototype.hasOwnProperty.call(KNOWN_BLOCKS, value.type) ? KNOWN_BLOCKS[value.type] : undefined;
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

/** The same request with its messages left to `plainMessages` (each schema's shell: `messages` any non-empty array). */
const shellMessages = { messages: z.array(z.unknown()).min(1) };
const countTokensShell = z.object({ ...prompt, ...shellMessages }).passthrough();

const messagesFields = {
    max_tokens: z.number().int().min(1),
    stream: z.boolean().optional(),
    temperature: z.number().min(0).max(1).optional(),
    top_p: z.number().min(0).max(1).optional(),
    top_k: z.number().int().min(0).optional(),
    stop_sequences: z.array(z.string()).optional(),
    metadata: z.object({ user_id: z.string().nullable().optional() }).passthrough().optional(),
};
const messagesSchema = z.object({ ...prompt, ...messagesFields }).passthrough();
const messagesShell = z.object({ ...prompt, ...shellMessages, ...messagesFields }).passthrough();

/** `POST /v1/messages`: throws a 400 naming the first offending field, as Anthropic does. */
export function parseMessagesRequest(body: unknown): MessagesRequest {
  return parseWith(messagesSchema, messagesShell, body) as MessagesRequest;
}

/** `POST /v1/messages/count_tokens`: the prompt fields only (no `max_tokens`). */
export function parseCountTokensRequest(body: unknown): MessagesPrompt {
  return parseWith(countTokensSchema, countTokensShell, body) as MessagesPrompt;
}

/** The whole schemas' answers, zod checking every message: what `parseMessagesRequest` and `parseCountTokensRequest` give, taken or not by `plainMessages` (the tests hold them to it). */
export const parseWholeMessagesRequest = (body: unknown): unknown => parseRequestBody(messagesSchema, body, issueError);
export const parseWholeCountTokensRequest = (body: unknown): unknown => parseRequestBody(countTokensSchema, body, issueError);

/** The whole schema's answer, its messages taken without zod when `plainMessages` takes them all (`parseTakingMessages`). */
function parseWith(schema: zodTypes.ZodTypeAny, shell: zodTypes.ZodTypeAny, body: unknown): unknown {
  return parseTakingMessages(() => schema, () => shell, plainMessages, body, issueError);
}

/**
 * The messages of the shapes Anthropic's clients send, as zod's schema gives them, without zod
 * (as Chat's `parseChatCompletionRequest` does, lambda/contract/request.ts): each message, and
 * each block of its content, a new object with the schema's keys first and every other key after
 * in its order; the blocks of the types the gateway reads checked as their schemas check them,
 * what they hold left as sent (as zod leaves it). zod (3) walks every block twice (the block,
 * then its type's schema), and a coding agent's history has hundreds. Undefined for anything else
 * (an image, a key named `__proto__`, a value the schemas refuse), which zod then checks and words.
 * `test/messages/plain-messages.test.ts` checks it against zod for any message.
 */
export function plainMessages(messages: unknown[]): Plain[] | undefined {
  const out: Plain[] = new Array(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (!isPlain(m) || (m.role !== 'user' && m.role !== 'assistant' && m.role !== 'system') || hasProtoKey(m)) return undefined;
    let content: unknown = m.content;
    if (Array.isArray(content)) {
      const blocks: Plain[] = new Array(content.length);
      for (let j = 0; j < content.length; j++) {
        const b = content[j];
        if (!plainBlock(b)) return undefined;
        blocks[j] = passedThrough(b, { type: b.type });
      }
      content = blocks;
    } else if (typeof content !== 'string') return undefined;
    out[i] = passedThrough(m, { role: m.role, content });
  }
  return out;
}

/** Whether zod's `block` takes this block: a type, and the type's own schema's checks for those the gateway reads (an image goes to zod). */
function plainBlock(b: unknown): b is Plain & { type: string } {
  if (!isPlain(b) || !isName(b.type) || hasProtoKey(b)) return false;
  switch (b.type) {
    case 'text':
      return typeof b.text === 'string';
    case 'tool_use':
      return isName(b.id) && isName(b.name) && isPlain(b.input);
    case 'tool_result': {
      if (!isName(b.tool_use_id) || ('is_error' in b && typeof b.is_error !== 'boolean')) return false;
      if (!('content' in b) || typeof b.content === 'string') return true;
      return Array.isArray(b.content) && b.content.every(plainBlock);
    }
    case 'thinking':
      return typeof b.thinking === 'string' && typeof b.signature === 'string';
    case 'redacted_thinking':
      return typeof b.data === 'string';
    case 'image':
      return false;
    default:
      return true;
  }
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
