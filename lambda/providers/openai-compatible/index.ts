import { withUsageExtras } from '../../contract/usage';
import type { IncomingMessage } from 'node:http';
import { upstreamError } from '../../contract/errors';
import type { ChatCompletion, ChatCompletionChunk, FinishReason } from '../../contract/openai';
import type { ChatCompletionRequest } from '../../contract/request';
import { ChatChunkDecoder, decodeChatCompletion, encodeChatRequest, usageOfChat } from '../../codecs/openai-chat';
import type { AnswerEvent } from '../../core/answer';
import { fetchUpstream, openEventStream, readJson, sseEvents } from '../http';
import type { AnswerCall, AnswerProvider, Provider, ProviderCall, RelayedEvent, RelayStream } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';
import { openAiCompatibleEmbeddings } from './embeddings';

const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
const FINISH_REASONS = new Set<string>(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);

/**
 * OpenAI and every upstream that speaks its protocol: the body passes through, the stream is
 * relayed. Both interfaces while the pipeline moves over (issue 18): `Provider` (chat requests and
 * chunks) and `AnswerProvider` (a `Call` encoded with the Chat codec, thinking fields left off;
 * answers decoded with it; `relayStream` keeps the relay fast path: no parse per event).
 */
export function openAiCompatibleProvider(): Provider & AnswerProvider {
  return {
    relayWire: 'openai-chat',

    async answer(call) {
      const deadline = new UpstreamDeadline(call.signal, 'The upstream');
      deadline.arm('total', call.timeouts.totalMs);
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

    async complete(call) {
      const deadline = new UpstreamDeadline(call.signal, 'The upstream');
      deadline.arm('total', call.timeouts.totalMs);
      let whole = false;
      try {
        const response = await post(call, { ...upstreamBody(call), stream: false, stream_options: undefined }, deadline);
        const completion = (await readJson(response).catch((err) => Promise.reject(deadline.failure(err, true)))) as ChatCompletion;
        whole = true;
        if (!Array.isArray(completion.choices)) throw upstreamError('The upstream answer has no choices.', { fallback: true });
        for (const choice of completion.choices) choice.finish_reason = finishReason(choice.finish_reason);
        // The tier that served the call bills its own prices.
        if (completion.usage && typeof completion.service_tier === 'string') withUsageExtras(completion.usage, { serviceTier: completion.service_tier });
        return completion;
      } finally {
        // A body read to its end leaves the socket to the keep-alive pool; anything else cuts it.
        deadline.dispose(!whole);
      }
    },

    async stream(call) {
      return relayed(call, relayEvents);
    },

    async streamData(call) {
      return relayed(call, dataEvents);
    },

    async embed(call) {
      return openAiCompatibleEmbeddings(call, (call.route.base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, ''));
    },
  };
}

/**
 * The client's body with the route's model and the output limit the hold pays for, in the field
 * the upstream enforces: OpenAI's own API takes `max_completion_tokens` (and refuses `max_tokens`
 * for its reasoning models); the others are only sure to honour `max_tokens`.
 */
function upstreamBody(call: ProviderCall): ChatCompletionRequest {
  const limit = call.request.max_completion_tokens ?? call.request.max_tokens ?? undefined;
  const field = call.route.output_limit_field ?? (isOpenAi(call.route.base_url ?? DEFAULT_BASE_URL) ? 'max_completion_tokens' : 'max_tokens');
  const body: ChatCompletionRequest = { ...call.request, model: call.route.model, messages: withoutThinkingFields(call.request.messages), max_tokens: undefined, max_completion_tokens: undefined };
  if (limit != null) body[field] = limit;
  return body;
}

/** The gateway's thinking extension fields stay off upstreams that never wrote them (an OpenAI upstream refuses unknown fields). */
function withoutThinkingFields(messages: ChatCompletionRequest['messages']): ChatCompletionRequest['messages'] {
  if (!messages.some((m) => m.role === 'assistant' && (m.thinking_blocks != null || m.reasoning_content != null))) return messages;
  return messages.map((m) => {
    if (m.role !== 'assistant') return m;
    const { thinking_blocks: _blocks, reasoning_content: _text, ...rest } = m;
    return rest;
  });
}

function isOpenAi(baseUrl: string): boolean {
  return /^https:\/\/api\.openai\.com(\/|$)/.test(baseUrl);
}

function post(call: ProviderCall<unknown>, body: object, deadline: UpstreamDeadline): Promise<IncomingMessage> {
  const base = (call.route.base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const headers: Record<string, string> = { accept: body && (body as { stream?: boolean }).stream ? 'text/event-stream' : 'application/json' };
  if (call.apiKey) headers.authorization = `Bearer ${call.apiKey}`;
  return fetchUpstream(`${base}/chat/completions`, { headers, body: JSON.stringify(body) }, call, deadline);
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

/** How long the rest of a body after `[DONE]` may take to arrive before its socket is cut. */
const DRAIN_AFTER_DONE_MS = 5_000;

/** The streamed call, read event by event by `read` (parsed chunks, or the events' data as sent). */
async function relayed<T>(call: ProviderCall, read: (body: IncomingMessage, call: ProviderCall) => AsyncGenerator<T>): Promise<AsyncIterable<T>> {
  const body = { ...upstreamBody(call), stream: true, stream_options: { include_usage: true } };
  const deadline = new UpstreamDeadline(call.signal, 'The upstream');
  try {
    const response = await post(call, body, deadline);
    return events(response, call, deadline, read);
  } catch (err) {
    deadline.dispose(true);
    throw err;
  }
}

async function* events<T>(
  body: IncomingMessage,
  call: ProviderCall,
  deadline: UpstreamDeadline,
  read: (body: IncomingMessage, call: ProviderCall) => AsyncGenerator<T>,
): AsyncGenerator<T> {
  let whole = false;
  try {
    yield* read(body, call);
    whole = true;
  } finally {
    deadline.dispose(!whole);
    if (whole) {
      // Read what follows [DONE] (normally only the end of the body) off the request path, so the
      // socket goes back to the keep-alive pool; an upstream that never ends the body loses it.
      body.resume();
      setTimeout(() => body.destroy(), DRAIN_AFTER_DONE_MS).unref();
    }
  }
}

async function* relayEvents(body: IncomingMessage, call: ProviderCall): AsyncGenerator<ChatCompletionChunk> {
  for await (const event of sseEvents(body, call.timeouts.idleMs)) {
    if (event.data === '[DONE]') return;
    let chunk: ChatCompletionChunk & { error?: { message?: string } };
    try {
      chunk = JSON.parse(event.data);
    } catch (err) {
      throw upstreamError('The upstream sent a stream event that is not JSON.', { cause: err });
    }
    if (chunk.error) throw upstreamError(`The upstream failed mid-stream: ${chunk.error.message ?? 'unknown error'}`);
    if (!Array.isArray(chunk.choices)) continue;
    for (const choice of chunk.choices) if (choice.finish_reason) choice.finish_reason = finishReason(choice.finish_reason);
    yield chunk;
  }
  throw upstreamError('The upstream stream ended before [DONE].');
}

/** The events' data as the upstream sent them, up to `[DONE]` (a stream without it broke off). */
async function* dataEvents(body: IncomingMessage, call: ProviderCall): AsyncGenerator<string> {
  for await (const event of sseEvents(body, call.timeouts.idleMs)) {
    if (event.data === '[DONE]') return;
    yield event.data;
  }
  throw upstreamError('The upstream stream ended before [DONE].');
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
    const parsed = parseEvent(data) as { error?: { message?: string } };
    if (parsed.error) throw upstreamError(`The upstream failed mid-stream: ${parsed.error.message ?? 'unknown error'}`);
  }
  return data;
}

function isObjectText(data: string): boolean {
  return data.charCodeAt(0) === 123 && data.charCodeAt(data.length - 1) === 125;
}

function parseEvent(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch (err) {
    throw upstreamError('The upstream sent a stream event that is not JSON.', { cause: err });
  }
}
