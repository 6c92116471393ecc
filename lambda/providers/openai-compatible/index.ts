import type { IncomingMessage } from 'node:http';
import { upstreamError } from '../../contract/errors';
import type { ChatCompletion, ChatCompletionChunk, FinishReason } from '../../contract/openai';
import type { ChatCompletionRequest } from '../../contract/request';
import { ChatChunkDecoder, decodeChatCompletion, encodeChatRequest, usageOfChat } from '../../codecs/openai-chat';
import type { AnswerEvent } from '../../core/answer';
import { fetchUpstream, openEventStream, readJson } from '../http';
import { parseStreamEvent } from '../../contract/json-body';
import { spliceJson } from '../../contract/json-splice';
import type { AnswerCall, AnswerProvider, ProviderCall, RelayedEvent, RelayStream } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';
import { openAiCompatibleEmbeddings } from './embeddings';

const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
const FINISH_REASONS = new Set<string>(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);

/**
 * OpenAI and every upstream that speaks its protocol: the body passes through, the stream is
 * relayed: a `Call` encoded with the Chat codec (thinking fields left off), answers decoded with
 * it; `relayStream` keeps the relay fast path (no parse per event).
 */
export function openAiCompatibleProvider(): AnswerProvider {
  return {
    relayWire: 'openai-chat',
    // The upstream answers `n` choices itself (`n` goes as an extension of the Chat wire).
    servesSeveralChoices: true,

    async answer(call) {
      const deadline = UpstreamDeadline.whole(call, 'The upstream');
      let whole = false;
      try {
        const response = await post(call, { ...chatBody(call), stream: false, stream_options: undefined }, deadline);
        const completion = (await readJson(response).catch((err) => Promise.reject(deadline.failure(err, true)))) as ChatCompletion;
        whole = true;
        if (!Array.isArray(completion.choices)) throw upstreamError('The upstream answer has no choices.', { fallback: true });
        for (const choice of completion.choices) choice.finish_reason = finishReason(choice.finish_reason);
        return decodeChatCompletion(completion);
      } finally {
        deadline.dispose(!whole);
      }
    },

    async answerStream(call) {
      const decoder = new ChatChunkDecoder();
      return openChatStream(call, (data) => {
        const chunk = JSON.parse(checkedEvent(data)) as ChatCompletionChunk;
        if (!Array.isArray(chunk.choices)) chunk.choices = [];
        for (const choice of chunk.choices) if (choice.finish_reason) choice.finish_reason = finishReason(choice.finish_reason);
        return decoder.push(chunk);
      });
    },

    async relayStream(call) {
      const kept: string[] = [];
      const texts: string[] = [];
      const events = await openChatStream<RelayedEvent>(call, (data) => [{ data, answer: relayedMeaning(data, kept) }]);
      const stream: RelayStream = {
        [Symbol.asyncIterator]: () => events[Symbol.asyncIterator](),
        deliveredText() {
          for (let i = texts.length; i < kept.length; i++) texts.push(chatChunkText(kept[i]));
          return texts.join('');
        },
      };
      return stream;
    },

    async embed(call) {
      return openAiCompatibleEmbeddings(call, (call.route.base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, ''));
    },
  };
}

function isOpenAi(baseUrl: string): boolean {
  return /^https:\/\/api\.openai\.com(\/|$)/.test(baseUrl);
}

function post(call: AnswerCall, body: ChatCompletionRequest, deadline: UpstreamDeadline): Promise<IncomingMessage> {
  const base = (call.route.base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const headers: Record<string, string> = { accept: body.stream ? 'text/event-stream' : 'application/json' };
  if (call.apiKey) headers.authorization = `Bearer ${call.apiKey}`;
  // A Chat client's large fields (its messages, its tools) go as it wrote them when they are what the codec would send.
  const source = call.request.source?.wire === 'openai-chat' ? call.request.source : undefined;
  return fetchUpstream(`${base}/chat/completions`, { headers, body: spliceJson(body as Record<string, unknown>, source) }, call, deadline);
}

/**
 * The Chat request for a call: the Chat codec's, without the thinking extension fields (upstreams
 * that never wrote them refuse them), the output limit in the field the upstream enforces.
 */
function chatBody(call: AnswerCall): ChatCompletionRequest {
  const { request, unsupported } = encodeChatRequest({ ...call.request, settings: { ...call.request.settings, model: call.route.model } }, { thinkingFields: false });
  if (unsupported) throw unsupported;
  const limit = request.max_completion_tokens;
  const field = call.route.output_limit_field ?? (isOpenAi(call.route.base_url ?? DEFAULT_BASE_URL) ? 'max_completion_tokens' : 'max_tokens');
  const body: ChatCompletionRequest = { ...request, max_tokens: undefined, max_completion_tokens: undefined };
  if (limit != null) body[field] = limit;
  return body;
}

/** The call's stream, opened (a failure before its first event may fall back), each event's data as `decode` reads it, up to `[DONE]`. */
async function openChatStream<T>(call: AnswerCall, decode: (data: string) => Iterable<T>): Promise<AsyncIterable<T>> {
  const body = { ...chatBody(call), stream: true, stream_options: { include_usage: true } };
  const deadline = new UpstreamDeadline(call.signal, 'The upstream');
  let done = false;
  return openEventStream<T>(deadline, call.timeouts.idleMs, () => post(call, body, deadline), {
    decode(event) {
      if (event.data === '[DONE]') {
        done = true;
        return [];
      }
      return decode(event.data);
    },
    end() {
      throw upstreamError('The upstream stream ended before [DONE].');
    },
    finished: () => done,
  });
}

const USAGE_OBJECT = /"usage"\s*:\s*\{/;
const SERVICE_TIER = /"service_tier"\s*:\s*"([a-z_]{1,32})"/;

/**
 * What a relayed event means for the meter, read without a parse where the relay had none: an
 * error is thrown, the usage (once per stream) decoded; the text is read back from the kept events
 * only when the tokenizer must count it (`deliveredText`).
 */
function relayedMeaning(data: string, kept: string[]): AnswerEvent[] {
  const checked = checkedEvent(data);
  if (!USAGE_OBJECT.test(checked)) {
    kept.push(checked);
    return [];
  }
  const chunk = JSON.parse(checked) as Partial<ChatCompletionChunk>;
  if (Array.isArray(chunk.choices) && chunk.choices.length) kept.push(checked);
  if (!chunk.usage) return [];
  const tier = typeof chunk.service_tier === 'string' ? chunk.service_tier : SERVICE_TIER.exec(kept.find((k) => k.includes('"service_tier"')) ?? '')?.[1];
  return [{ type: 'usage', usage: usageOfChat(chunk.usage, tier) }];
}

/** The text, reasoning and tool arguments of one kept chunk (read only when the tokenizer must count them). */
export function chatChunkText(data: string): string {
  try {
    const chunk = JSON.parse(data) as ChatCompletionChunk;
    return (chunk.choices ?? [])
      .map((c) => {
        const delta = c.delta as (typeof c.delta & { reasoning_content?: unknown; reasoning?: unknown }) | undefined;
        const reasoning = delta?.reasoning_content ?? delta?.reasoning;
        return (typeof reasoning === 'string' ? reasoning : '') + (delta?.content ?? '') + (delta?.tool_calls ?? []).map((t) => t.function?.arguments ?? '').join('');
      })
      .join('');
  } catch {
    return '';
  }
}

/** Upstreams that speak OpenAI's protocol may still use words of their own (`eos`, `STOP`). */
export function finishReason(reason: string | null | undefined): FinishReason {
  if (reason && FINISH_REASONS.has(reason)) return reason as FinishReason;
  if (reason && /length|max_tokens/i.test(reason)) return 'length';
  return 'stop';
}

/**
 * The event's JSON text, trimmed, or the upstream error it is: an event that is not an object
 * (HTML, a bare word, a cut line) or that carries an `error`. The pipeline checks the first event
 * before answering, so that such an upstream is failed over, or answered 502, not relayed.
 */
export function checkedEvent(event: string): string {
  const data = isObjectText(event) ? event : event.trim();
  if (!isObjectText(data)) throw upstreamError('The upstream sent a stream event that is not JSON.');
  if (data.includes('"error"')) {
    const parsed = parseStreamEvent(data) as { error?: { message?: string } };
    if (parsed.error) throw upstreamError(`The upstream failed mid-stream: ${parsed.error.message ?? 'unknown error'}`);
  }
  return data;
}

function isObjectText(data: string): boolean {
  return data.charCodeAt(0) === 123 && data.charCodeAt(data.length - 1) === 125;
}

