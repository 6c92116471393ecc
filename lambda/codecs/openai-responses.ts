// OpenAI Responses ↔ the canonical model — first slice: output items, reasoning items and usage.
// Requests (items ↔ prompt) and stream events are the next step (docs/ARCHITECTURE.md).
import type { ResponseFunctionToolCall, ResponseOutputMessage, ResponseReasoningItem } from 'openai/resources/responses/responses';
import type { Answer, AnswerPart, Usage } from '../core/answer';
import type { ReasoningPart } from '../core/prompt';
import type { ResponseUsage } from '../contract/responses';

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
  for (const part of answer.parts) {
    if (part.type === 'text' || part.type === 'refusal') {
      message ??= { id: options.idFor('msg', out.length), type: 'message', role: 'assistant', status: options.status, content: [] };
      message.content.push(part.type === 'text' ? { type: 'output_text', text: part.text, annotations: [], logprobs: [] } : { type: 'refusal', refusal: part.text });
      continue;
    }
    flush();
    out.push(part.type === 'reasoning' ? reasoningItemOf(part, options, out.length) : { id: options.idFor('fc', out.length), type: 'function_call', status: options.status, call_id: part.id, name: part.name, arguments: part.arguments });
  }
  flush();
  return out;
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
