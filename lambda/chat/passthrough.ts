import { parseStreamEvent } from '../contract/json-body';
import type { ChatCompletionChunk } from '../contract/openai';
import { checkedEvent, finishReason } from '../providers/openai-compatible';

export { checkedEvent };

/** One event of an OpenAI-compatible upstream's stream, as the chat endpoint relays it (JSON text). */
export interface RelayedData {
  data: string;
  /** The usage chunk (no choices) that include_usage adds at the end. */
  usageOnly: boolean;
  /** The event carries a usage object (the usage chunk, or a last chunk with usage in it). */
  carriesUsage: boolean;
}

const FINISH_REASON = /"finish_reason"\s*:\s*"([^"\\]*)"/g;
const MODEL = /"model"\s*:\s*"(?:[^"\\]|\\.)*"/;
const NO_CHOICES = /"choices"\s*:\s*\[\s*\]/;
const USAGE_OBJECT = /"usage"\s*:\s*\{/;
const OPENAI_WORDS = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);

/**
 * A chunk relayed as the upstream wrote it (issue 12): the model id rewritten to the gateway's, a
 * provider's own `finish_reason` words put in OpenAI's, and nothing else parsed on the way (only a
 * chunk without any `choices` key, which is not OpenAI's shape, is rewritten with an empty list).
 * The meter reads the frame's meaning from the provider's relay (`RelayedEvent.answer`).
 */
export function relayedChatData(event: string, model: string): RelayedData {
  // A function, so that `$` in a model id is not read as a replacement pattern.
  let data = checkedEvent(event).replace(MODEL, () => model);
  if (data.includes('"finish_reason":"') || data.includes('"finish_reason": "')) {
    data = data.replace(FINISH_REASON, (whole, word: string) => (OPENAI_WORDS.has(word) ? whole : `"finish_reason":"${finishReason(word)}"`));
  }
  const hasChoices = data.includes('"choices"');
  const usageOnly = !hasChoices || NO_CHOICES.test(data);
  if (!hasChoices) data = JSON.stringify({ ...(parseStreamEvent(data) as Partial<ChatCompletionChunk>), choices: [] });
  return { data, usageOnly, carriesUsage: USAGE_OBJECT.test(data) };
}

/** `"model":"<id>"` as relayed chunks carry it, made once per request. */
export function modelField(modelId: string): string {
  return `"model":${JSON.stringify(modelId)}`;
}

/**
 * The frame's JSON as the client gets it, or undefined for none: the usage chunk only for a client
 * that asked for it (`stream_options.include_usage`), and for one that did not, no `usage` key at
 * all (neither the `"usage":null` every chunk of such a stream carries, nor a usage object).
 */
export function relayedForClient(event: RelayedData, includeUsage: boolean): string | undefined {
  if (includeUsage) return event.data;
  if (event.usageOnly) return undefined;
  if (event.carriesUsage) {
    const { usage: _usage, ...rest } = JSON.parse(event.data) as ChatCompletionChunk;
    return JSON.stringify(rest);
  }
  return event.data.replace(NULL_USAGE, '');
}

const NULL_USAGE = /,\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,/;
