import { EventSourceParserStream, type EventSourceMessage } from 'eventsource-parser/stream';
import { GatewayError, invalidRequest, serverOverloaded, upstreamError, upstreamTimeout } from '../contract/errors';
import type { UpstreamDeadline } from './upstream-deadline';
import type { ProviderCall } from './types';

/**
 * An upstream HTTP call whose failures before the first byte come back as GatewayErrors. The
 * deadline's first-byte timer is cleared once headers are in (it must not cut a flowing stream);
 * the caller disposes of the deadline when the body is done.
 */
export async function fetchUpstream(
  url: string,
  init: { headers: Record<string, string>; body: string },
  call: ProviderCall,
  deadline: UpstreamDeadline,
): Promise<Response> {
  deadline.arm('first_byte', call.timeouts.firstByteMs);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...init.headers },
      body: init.body,
      signal: deadline.signal,
    });
  } catch (err) {
    throw deadline.failure(err, true);
  } finally {
    deadline.disarm('first_byte');
  }
  if (!response.ok) throw await upstreamStatusError(response);
  return response;
}

/** Maps an upstream's error status onto the gateway's table (ARCHITECTURE §1). */
export async function upstreamStatusError(response: Response): Promise<GatewayError> {
  const text = await response.text().catch(() => '');
  const message = providerMessage(text);
  const status = response.status;
  if (status === 400 || status === 422) {
    return invalidRequest(message ?? 'The upstream rejected the request.', providerParam(text));
  }
  if (status === 429 || status === 503 || status === 529) {
    const retryAfter = response.headers.get('retry-after');
    return serverOverloaded('The upstream is overloaded; try again shortly.', {
      fallback: true,
      headers: retryAfter && /^\d+$/.test(retryAfter) ? { 'retry-after': retryAfter } : {},
    });
  }
  if (status === 408 || status === 504) return upstreamTimeout('The upstream timed out.', { fallback: true });
  return upstreamError(`The upstream answered ${status}.`, { fallback: true });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorObject(text: string): Record<string, unknown> | undefined {
  const doc = parseJson(text) as { error?: unknown } | undefined;
  return doc && typeof doc.error === 'object' && doc.error !== null ? (doc.error as Record<string, unknown>) : undefined;
}

/** The human message of an upstream error body (OpenAI's and Anthropic's shapes), if any. */
export function providerMessage(text: string): string | undefined {
  const message = errorObject(text)?.message;
  return typeof message === 'string' && message ? message.slice(0, 1000) : undefined;
}

function providerParam(text: string): string | null {
  const param = errorObject(text)?.param;
  return typeof param === 'string' ? param : null;
}

/**
 * The events of an SSE body, as they arrive. A silence longer than `idleMs` or a body that breaks
 * becomes a GatewayError; the caller decides what an early end means.
 */
export async function* sseEvents(body: ReadableStream<Uint8Array>, call: ProviderCall): AsyncGenerator<EventSourceMessage> {
  const reader = body
    .pipeThrough(new TextDecoderStream() as unknown as ReadableWritablePair<string, Uint8Array>)
    .pipeThrough(new EventSourceParserStream())
    .getReader();
  try {
    for (;;) {
      const next = await readWithin(reader, call.timeouts.idleMs);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

async function readWithin<T>(reader: ReadableStreamDefaultReader<T>, idleMs: number): Promise<ReadableStreamReadResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(upstreamTimeout('The upstream stream stalled.')), idleMs);
  });
  try {
    return await Promise.race([reader.read(), idle]);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw upstreamError('The upstream stream broke off.', { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a JSON body within the call's total time; a body that is not JSON is an upstream error. */
export async function readJson(response: Response): Promise<unknown> {
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    throw upstreamError('The upstream response broke off.', { cause: err, fallback: true });
  }
  const doc = parseJson(text);
  if (doc === undefined || doc === null || typeof doc !== 'object') {
    throw upstreamError('The upstream answered with something that is not JSON.', { fallback: true });
  }
  return doc;
}
