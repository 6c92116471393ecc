import { upstreamError } from '../contract/errors';
import type { ChatCompletionChunk, CompletionUsage } from '../contract/openai';
import { withUsageExtras } from '../contract/usage';
import { chatChunkText, checkedEvent, finishReason } from '../providers/openai-compatible';

export { checkedEvent };
import type { StreamMeter } from './pipeline';

/** One event of an OpenAI-compatible upstream's stream, relayed as its JSON text. */
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
const SERVICE_TIER = /"service_tier"\s*:\s*"([a-z_]{1,32})"/;
const PRODUCED = /"(?:content|arguments|reasoning_content|reasoning)"\s*:\s*"[^"]/;
const OPENAI_WORDS = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);

/**
 * Chunks relayed as the upstream wrote them (issue 12): the model id rewritten to the gateway's,
 * a provider's own `finish_reason` words put in OpenAI's, and nothing else parsed on the way.
 * Only the usage chunk (once per stream) and an event that may be an error are parsed; the text
 * delivered is read back from the kept events only when the provider's usage never came (a
 * client that went away, an upstream that broke off, one that reports no usage).
 */
export function dataMeter(modelId: string): StreamMeter<string, RelayedData> {
  const model = `"model":${JSON.stringify(modelId)}`;
  const kept: string[] = [];
  // The kept events' text, read back once each (checkpoints ask for it every few seconds).
  const texts: string[] = [];
  let usage: CompletionUsage | undefined;
  let serviceTier: string | undefined;
  let produced = false;
  return {
    observe(event) {
      // A function, so that `$` in a model id is not read as a replacement pattern.
      let data = checkedEvent(event).replace(MODEL, () => model);
      if (data.includes('"finish_reason":"') || data.includes('"finish_reason": "')) {
        data = data.replace(FINISH_REASON, (whole, word: string) => (OPENAI_WORDS.has(word) ? whole : `"finish_reason":"${finishReason(word)}"`));
      }
      const usageOnly = NO_CHOICES.test(data) || !data.includes('"choices"');
      // Usage comes once, mostly in a chunk of its own; some upstreams put it in the last chunk with choices.
      const carriesUsage = USAGE_OBJECT.test(data);
      if (carriesUsage || usageOnly) {
        const chunk = parse(data) as Partial<ChatCompletionChunk>;
        if (chunk.usage) usage = chunk.usage;
        // A chunk without choices at all is not OpenAI's shape: its usage is kept, the chunk is not sent as is.
        if (!Array.isArray(chunk.choices)) data = JSON.stringify({ ...chunk, choices: [] });
      }
      // The tier that served the stream (any chunk may name it) bills its own prices.
      if (serviceTier === undefined && data.includes('"service_tier"')) serviceTier = SERVICE_TIER.exec(data)?.[1];
      if (!usageOnly) {
        kept.push(data);
        if (!produced && PRODUCED.test(data)) produced = true;
      }
      return { data, usageOnly, carriesUsage };
    },
    usage: () => (usage && serviceTier ? withUsageExtras(usage, { serviceTier }) : usage),
    text: () => {
      for (let i = texts.length; i < kept.length; i++) texts.push(chatChunkText(kept[i]));
      return texts.join('');
    },
    produced: () => produced,
  };
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch (err) {
    throw upstreamError('The upstream sent a stream event that is not JSON.', { cause: err });
  }
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
