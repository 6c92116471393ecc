import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { urlToHttpOptions } from 'node:url';
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
  init: { headers: Record<string, string>; body: string | Buffer },
  call: Pick<ProviderCall, 'timeouts'>,
  deadline: UpstreamDeadline,
  /** The error a status other than 2xx is thrown as (a provider with its own error body maps it). */
  statusError: (status: number, response: IncomingMessage) => Promise<GatewayError> = upstreamStatusError,
): Promise<IncomingMessage> {
  let response: IncomingMessage;
  let answered = false;
  const sent = postUpstream(url, init.headers, init.body, deadline.signal);
  // Armed a tick later: Node writes the request on a kept-alive socket in a tick queued as the
  // request was made, so the timer's setting follows that write instead of preceding it (issue 22).
  // Ticks all run before the promise callbacks that could settle the call, so it is never armed
  // after its disarm; the guard says so.
  process.nextTick(() => {
    if (!answered) deadline.arm('first_byte', call.timeouts.firstByteMs);
  });
  try {
    response = await sent;
  } catch (err) {
    throw deadline.failure(err, true);
  } finally {
    answered = true;
    deadline.disarm('first_byte');
  }
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) throw await statusError(status, response);
  return response;
}

/**
 * An upstream URL as `http.request` options (what Node makes of a URL it is given), kept per URL:
 * parsing the same few routes' URLs was a measurable part of a cold request's work before the
 * upstream call (docs/BENCHMARKS.md, "The first byte, fourteenth pass").
 */
function addressOf(url: string): Address {
  let address = ADDRESSES.get(url);
  if (!address) {
    if (ADDRESSES.size >= 256) ADDRESSES.clear();
    // Node's options, copied into a plain object: its own has no prototype and every URL field, and
    // spreading it into each request's options took 1.0-1.3 µs against 0.11-0.12 (Node 24 and 20; `npx tsx bench/spread.ts`).
    const { protocol, hostname, port, path, auth } = urlToHttpOptions(new URL(url));
    address = { protocol, hostname, port, path, ...(auth !== undefined && { auth }) };
    ADDRESSES.set(url, address);
  }
  return address;
}
type Address = Pick<ReturnType<typeof urlToHttpOptions>, 'protocol' | 'hostname' | 'port' | 'path' | 'auth'>;
const ADDRESSES = new Map<string, Address>();

/** A POST of a JSON body on the shared keep-alive agents; settles with the response head. */
export function postUpstream(url: string, headers: Record<string, string>, body: string | Buffer, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = addressOf(url);
    const https = target.protocol === 'https:';
    const send = https ? httpsRequest : httpRequest;
    const attempt = (retried: boolean) => {
      const req = send({
        method: 'POST',
        agent: https ? AGENTS['https:'] : AGENTS['http:'],
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
        ...target,
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

/** Events read ahead of the caller before the body is paused (it flows again below half of it). */
const SSE_READ_AHEAD = 256;

/**
 * The events of an SSE body, as they arrive. A silence longer than `idleMs` while the caller waits
 * or a body that breaks becomes a GatewayError; the caller decides what an early end means.
 *
 * Read from the body's own `data` events into a queue the caller drains (the body paused when
 * `SSE_READ_AHEAD` events wait), rather than through the stream's async iterator, a generator and a
 * promise race per read: fewer promise hops between the upstream's bytes and the frame written to
 * the client, and a timer only while the caller actually waits (issue 22: the first byte, and the
 * CPU of every chunk). The caller owns the body: it cuts it (an abort) or lets it finish and go
 * back to the pool; `return()` only stops listening.
 */
export function sseEvents(body: Readable, idleMs: number): SseEvents {
  return new SseEvents(body, idleMs);
}

export class SseEvents implements AsyncIterableIterator<EventSourceMessage> {
  private readonly queue: EventSourceMessage[] = [];
  private readonly parser = createParser({ onEvent: (event) => this.queue.push(event) });
  /**
   * UTF-8 across chunk boundaries. A `StringDecoder` rather than a streaming `TextDecoder`: the
   * same text (invalid bytes become U+FFFD), for a fraction of the cost to make one per stream
   * (issue 22: this is made on the way to the first byte). A leading BOM, which a `TextDecoder`
   * drops and the SSE standard ignores, is dropped in `feed`.
   */
  private readonly decoder = new StringDecoder('utf8');
  private started = false;
  private ended = false;
  private failure: GatewayError | undefined;
  private stopped = false;
  private paused = false;
  private detached = false;
  private waiter: { resolve: (r: IteratorResult<EventSourceMessage>) => void; reject: (err: unknown) => void; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly body: Readable,
    private readonly idleMs: number,
  ) {
    // Bytes already in (the first event comes with the head, as a provider's often does) are read
    // now, not a tick later once the body flows: the first event is ready for the first read.
    if (body.readableLength > 0) for (let chunk = body.read(); chunk !== null; chunk = body.read()) this.onData(chunk as Buffer);
    body.on('data', this.onData);
    body.once('end', this.onEnd);
    body.once('error', this.onError);
    body.once('close', this.onClose);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<EventSourceMessage>> {
    const ready = this.take();
    if (ready) return ready;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(upstreamTimeout('The upstream stream stalled.')), this.idleMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Stops listening; the body is left as it is (its owner drains or cuts it). */
  async return(): Promise<IteratorResult<EventSourceMessage>> {
    if (!this.stopped) {
      this.stopped = true;
      this.detach();
      this.settle();
    }
    return { done: true, value: undefined };
  }

  /** An event waiting, the end, or the failure; undefined when the caller must wait. */
  private take(): Promise<IteratorResult<EventSourceMessage>> | undefined {
    const event = this.queue.shift();
    if (event) {
      if (this.paused && this.queue.length < SSE_READ_AHEAD / 2) {
        this.paused = false;
        this.body.resume();
      }
      return Promise.resolve({ done: false, value: event });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended || this.stopped) return Promise.resolve({ done: true, value: undefined });
    return undefined;
  }

  /** Wakes a waiting caller with what there is now (or with `error`). */
  private settle(error?: GatewayError): void {
    if (error && !this.failure && !this.ended) {
      this.failure = error;
      this.detach();
    }
    const waiter = this.waiter;
    if (!waiter) return;
    const ready = this.take();
    if (!ready) return;
    this.waiter = undefined;
    clearTimeout(waiter.timer);
    ready.then(waiter.resolve, waiter.reject);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.feed(this.decoder.write(chunk));
    if (this.queue.length >= SSE_READ_AHEAD && !this.paused) {
      this.paused = true;
      this.body.pause();
    }
    this.settle();
    // Bytes without a whole event yet (a keep-alive comment, an event in pieces) are not silence:
    // a caller still waiting has its idle time counted from them.
    this.waiter?.timer.refresh();
  };

  /** Text to the parser, a leading BOM dropped. */
  private feed(text: string): void {
    if (!this.started && text) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.parser.feed(text);
  }

  private readonly onEnd = (): void => {
    this.feed(this.decoder.end());
    this.ended = true;
    this.detach();
    this.settle();
  };

  private readonly onError = (err: unknown): void => {
    this.settle(err instanceof GatewayError ? err : upstreamError('The upstream stream broke off.', { cause: err }));
  };

  /** Closed before its end without an error of its own (cut): the body broke off. */
  private readonly onClose = (): void => {
    if (!this.ended) this.onError(new Error('The body closed before its end.'));
  };

  private detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.body.off('data', this.onData);
    this.body.off('end', this.onEnd);
    this.body.off('error', this.onError);
    this.body.off('close', this.onClose);
    // Errors after we stopped listening are the owner's (it may cut the socket): never unhandled.
    this.body.on('error', ignore);
  }
}

const ignore = () => undefined;

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
  let events: SseEvents | undefined;
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
    await events?.return().catch(() => undefined);
    deadline.dispose(true);
    throw deadline.failure(err, true);
  }
  return restOfStream(first, body, events, deadline, decoding);
}

async function* restOfStream<T>(
  first: T[],
  body: IncomingMessage,
  events: SseEvents,
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
    await events.return().catch(() => undefined);
    if (whole) {
      // What follows the last event (normally only the end of the body) is read off the request
      // path, so the socket goes back to the keep-alive pool; an upstream that never ends it loses it.
      body.resume();
      setTimeout(() => body.destroy(), DRAIN_AFTER_END_MS).unref();
    }
  }
}
