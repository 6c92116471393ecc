import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { GatewayError, invalidRequest, serverOverloaded, upstreamError, upstreamTimeout } from '../contract/errors';
import type { UpstreamDeadline } from './upstream-deadline';
import type { ProviderCall } from './types';

/**
 * Keep-alive agents for upstream calls. `node:http` rather than `fetch`: the same call costs about
 * 0.36 ms less CPU and 0.7 ms less latency here (docs/BENCHMARKS.md, relay against relay-fetch).
 * No cap on sockets per host: a capped agent queues the request past the cap behind streams that
 * may last minutes, unseen by the deadlines (a thousand streams of one account in local mode).
 */
const AGENTS = {
  'http:': new HttpAgent({ keepAlive: true }),
  'https:': new HttpsAgent({ keepAlive: true }),
};

/**
 * An upstream HTTP call whose failures before the first byte come back as GatewayErrors. The
 * deadline's first-byte timer is cleared once headers are in (it must not cut a flowing stream);
 * the caller disposes of the deadline when the body is done, which also ends the socket's use.
 */
export async function fetchUpstream(
  url: string,
  init: { headers: Record<string, string>; body: string },
  call: Pick<ProviderCall, 'timeouts'>,
  deadline: UpstreamDeadline,
  /** The error a status other than 2xx is thrown as (a provider with its own error body maps it). */
  statusError: (status: number, response: IncomingMessage) => Promise<GatewayError> = upstreamStatusError,
): Promise<IncomingMessage> {
  deadline.arm('first_byte', call.timeouts.firstByteMs);
  let response: IncomingMessage;
  try {
    response = await postUpstream(url, init.headers, init.body, deadline.signal);
  } catch (err) {
    throw deadline.failure(err, true);
  } finally {
    deadline.disarm('first_byte');
  }
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) throw await statusError(status, response);
  return response;
}

/** A POST of a JSON body on the shared keep-alive agents; settles with the response head. */
export function postUpstream(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const attempt = (retried: boolean) => {
      const req = send(target, {
        method: 'POST',
        agent: target.protocol === 'https:' ? AGENTS['https:'] : AGENTS['http:'],
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
      });
      // Destroyed without an error on abort (not `signal:`): a reader that already let go of the
      // body must not get an AbortError event it no longer listens for; a pending read gets ECONNRESET.
      const onAbort = () => req.destroy();
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', onAbort));
      req.once('response', (response) => {
        response.on('error', () => undefined);
        resolve(response);
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the server closed as it sat idle, just as this request was written
        // on it: the request never reached the server's handler. Sent again once on a new socket,
        // as Node's documentation advises (`request.reusedSocket`); any other failure is the call's.
        if (!retried && req.reusedSocket && !signal.aborted && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) attempt(true);
        else reject(err);
      });
      req.end(body);
    };
    attempt(false);
  });
}

/** A whole body as text; a body that breaks off rejects. */
export async function readText(body: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of body) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

/** Maps an upstream's error status onto the gateway's table (ARCHITECTURE §1). */
export async function upstreamStatusError(status: number, response: IncomingMessage): Promise<GatewayError> {
  const text = await readText(response).catch(() => '');
  const message = providerMessage(text);
  if (status === 400 || status === 422) {
    return invalidRequest(message ?? 'The upstream rejected the request.', providerParam(text));
  }
  if (status === 429 || status === 503 || status === 529) {
    const retryAfter = response.headers['retry-after'];
    return serverOverloaded('The upstream is overloaded; try again shortly.', {
      fallback: true,
      headers: typeof retryAfter === 'string' && /^\d+$/.test(retryAfter) ? { 'retry-after': retryAfter } : {},
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
export async function* sseEvents(body: AsyncIterable<Buffer>, idleMs: number): AsyncGenerator<EventSourceMessage> {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  const decoder = new TextDecoder();
  // The caller owns the body: it cuts it (an abort) or lets it finish and go back to the pool.
  const parts = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await readWithin(parts, idleMs);
    parser.feed(next.done ? decoder.decode() : decoder.decode(next.value, { stream: true }));
    while (events.length) yield events.shift()!;
    if (next.done) return;
  }
}

async function readWithin<T>(parts: AsyncIterator<T>, idleMs: number): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(upstreamTimeout('The upstream stream stalled.')), idleMs);
  });
  try {
    return await Promise.race([parts.next(), idle]);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw upstreamError('The upstream stream broke off.', { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a JSON body within the call's total time; a body that is not JSON is an upstream error. */
export async function readJson(response: IncomingMessage): Promise<unknown> {
  let text: string;
  try {
    text = await readText(response);
  } catch (err) {
    throw upstreamError('The upstream response broke off.', { cause: err, fallback: true });
  }
  const doc = parseJson(text);
  if (doc === undefined || doc === null || typeof doc !== 'object') {
    throw upstreamError('The upstream answered with something that is not JSON.', { fallback: true });
  }
  return doc;
}

/** How long the rest of a body after a stream's last event may take to arrive before its socket is cut. */
export const DRAIN_AFTER_END_MS = 5_000;

/** How an upstream's SSE events become items, for `openEventStream`. */
export interface EventStreamDecoding<T> {
  /** The items one event becomes (none for a `ping`); throws a GatewayError for an error event. */
  decode(event: EventSourceMessage): Iterable<T>;
  /** What the end of the body means: the last items, or a throw when the stream was cut short. */
  end(): Iterable<T>;
  /** True once the stream's last event was read (`[DONE]`, `message_stop`): nothing more is read. */
  finished(): boolean;
}

/**
 * An upstream event stream, opened: `open` sends the call and settles with the response head; the
 * stream is then read until its first item, so that a failure until then (an overloaded error as
 * the first event, a body that ends at once) is thrown with `fallback` and the next route may be
 * tried. The rest is read as the consumer pulls, each silence bounded by `idleMs`; a failure is
 * thrown in the gateway's words. A stream read to its end leaves its socket to the keep-alive pool
 * (what follows is drained off the request path); one the consumer stops early is cut.
 */
export async function openEventStream<T>(
  deadline: UpstreamDeadline,
  idleMs: number,
  open: () => Promise<IncomingMessage>,
  decoding: EventStreamDecoding<T>,
): Promise<AsyncIterable<T>> {
  let body: IncomingMessage | undefined;
  let events: AsyncGenerator<EventSourceMessage> | undefined;
  const first: T[] = [];
  try {
    body = await open();
    events = sseEvents(body, idleMs);
    while (first.length === 0 && !decoding.finished()) {
      const next = await events.next();
      if (next.done) {
        first.push(...decoding.end());
        break;
      }
      first.push(...decoding.decode(next.value));
    }
  } catch (err) {
    await events?.return(undefined).catch(() => undefined);
    deadline.dispose(true);
    throw deadline.failure(err, true);
  }
  return restOfStream(first, body, events, deadline, decoding);
}

async function* restOfStream<T>(
  first: T[],
  body: IncomingMessage,
  events: AsyncGenerator<EventSourceMessage>,
  deadline: UpstreamDeadline,
  decoding: EventStreamDecoding<T>,
): AsyncGenerator<T> {
  let whole = false;
  try {
    yield* first;
    while (!decoding.finished()) {
      let items: Iterable<T>;
      try {
        const next = await events.next();
        items = next.done ? decoding.end() : decoding.decode(next.value);
        if (next.done) whole = true;
      } catch (err) {
        throw deadline.failure(err, false);
      }
      yield* items;
      if (whole) return;
    }
    whole = true;
  } finally {
    deadline.dispose(!whole);
    await events.return(undefined).catch(() => undefined);
    if (whole) {
      // What follows the last event (normally only the end of the body) is read off the request
      // path, so the socket goes back to the keep-alive pool; an upstream that never ends it loses it.
      body.resume();
      setTimeout(() => body.destroy(), DRAIN_AFTER_END_MS).unref();
    }
  }
}
