import type { IncomingMessage } from 'node:http';
import { upstreamError } from '../../contract/errors';
import type { ChatCompletionChunk } from '../../contract/openai';
import { postUpstream, readText, sseEvents } from '../http';
import type { Provider, ProviderCall } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';
import { anthropicError } from './errors';
import { anthropicRequest } from './request';
import { anthropicResponseToCompletion } from './response';
import { summarizesThinking } from '../../money/thinking';
import { AnthropicStreamMapper } from './stream';
import type { AnthropicErrorBody, AnthropicMessageResponse, AnthropicMessagesRequest, AnthropicStreamEvent } from './wire';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';

/**
 * Anthropic's Messages API behind the OpenAI contract.
 *
 * @example
 * const provider = anthropicProvider();
 * const completion = await provider.complete({ request, route: { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022' }, apiKey, ... });
 */
export function anthropicProvider(): Provider {
  return {
    async complete(call) {
      const plan = anthropicRequest(call.request, call.route.model, call.maxOutputTokens, false);
      const deadline = new UpstreamDeadline(call.signal, 'Anthropic');
      deadline.arm('first_byte', call.timeouts.firstByteMs);
      deadline.arm('total', call.timeouts.totalMs);
      try {
        const response = await postMessages(call, plan.body, deadline);
        deadline.disarm('first_byte');
        const message = parseMessage(await readText(response));
        return anthropicResponseToCompletion(message, plan.jsonToolName);
      } catch (err) {
        throw deadline.failure(err, true);
      } finally {
        deadline.dispose();
      }
    },

    async stream(call) {
      const plan = anthropicRequest(call.request, call.route.model, call.maxOutputTokens, true);
      const deadline = new UpstreamDeadline(call.signal, 'Anthropic');
      const thinking = plan.body.thinking;
      const mapper = new AnthropicStreamMapper(
        plan.jsonToolName,
        thinking && { budgetTokens: thinking.budget_tokens, outputLimit: plan.body.max_tokens, summarized: summarizesThinking(call.route.model) },
      );
      let events: AsyncIterator<AnthropicStreamEvent>;
      let first: ChatCompletionChunk[] = [];
      try {
        deadline.arm('first_byte', call.timeouts.firstByteMs);
        const response = await postMessages(call, plan.body, deadline);
        deadline.disarm('first_byte');
        events = anthropicEvents(response, call.timeouts.idleMs);
        // Read up to message_start before answering: an overloaded error as the first event can still fall back.
        while (first.length === 0) {
          const next = await events.next();
          if (next.done) {
            mapper.end();
            break;
          }
          first = mapper.push(next.value);
        }
      } catch (err) {
        deadline.dispose(true);
        throw deadline.failure(err, true);
      }
      return relay(first, events, mapper, deadline);
    },
  };
}

async function* relay(
  first: ChatCompletionChunk[],
  events: AsyncIterator<AnthropicStreamEvent>,
  mapper: AnthropicStreamMapper,
  deadline: UpstreamDeadline,
): AsyncGenerator<ChatCompletionChunk> {
  try {
    yield* first;
    while (!mapper.finished) {
      let next: IteratorResult<AnthropicStreamEvent>;
      try {
        next = await events.next();
        if (next.done) mapper.end();
      } catch (err) {
        throw deadline.failure(err, false);
      }
      if (next.done) return;
      yield* mapper.push(next.value);
    }
  } finally {
    deadline.dispose(true);
    await events.return?.().catch(() => undefined);
  }
}

async function postMessages(call: ProviderCall, body: AnthropicMessagesRequest, deadline: UpstreamDeadline): Promise<IncomingMessage> {
  const base = (call.route.base_url ?? ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, '');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: body.stream ? 'text/event-stream' : 'application/json',
    'anthropic-version': ANTHROPIC_VERSION,
  };
  if (call.apiKey) headers['x-api-key'] = call.apiKey;
  const response = await postUpstream(`${base}/v1/messages`, headers, JSON.stringify(body), deadline.signal);
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) {
    const error = parseErrorBody(await readText(response).catch(() => ''));
    throw anthropicError(error?.error.type, error?.error.message, status);
  }
  return response;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseErrorBody(text: string): AnthropicErrorBody | undefined {
  const doc = parseJson(text);
  if (!isObject(doc) || !isObject(doc.error)) return undefined;
  const { type, message } = doc.error;
  return { type: 'error', error: { type: typeof type === 'string' ? type : 'unknown', message: typeof message === 'string' ? message.slice(0, 1000) : '' } };
}

function parseMessage(text: string): AnthropicMessageResponse {
  const doc = parseJson(text);
  if (!isObject(doc) || doc.type !== 'message' || !Array.isArray(doc.content)) {
    throw upstreamError('Anthropic answered with something that is not a message.', { fallback: true });
  }
  return doc as unknown as AnthropicMessageResponse;
}

/** The SSE body as typed events; a silence longer than `idleMs` ends it with a timeout. */
async function* anthropicEvents(body: IncomingMessage, idleMs: number): AsyncGenerator<AnthropicStreamEvent> {
  for await (const event of sseEvents(body, idleMs)) {
    const doc = parseJson(event.data);
    if (!isObject(doc) || typeof doc.type !== 'string') {
      throw upstreamError(`Anthropic sent a stream event that is not JSON (event: ${event.event ?? 'message'}).`);
    }
    yield doc as unknown as AnthropicStreamEvent;
  }
}
