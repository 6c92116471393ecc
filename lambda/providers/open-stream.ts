import type { UpstreamDeadline } from './upstream-deadline';

/** A provider's stream decoder: upstream events in, the items the caller reads out (answer events, chunks). */
export interface StreamDecoder<E, T> {
  /** true once the upstream's last event (message_stop, metadata) is in: nothing more is read. */
  readonly finished: boolean;
  /** Throws a GatewayError for an error event. */
  push(event: E): T[];
  /** At the body's end: throws when the stream was cut before its last event. */
  end(): void;
}

export interface OpenedStream<E, T> {
  events: AsyncIterator<E>;
  decoder: StreamDecoder<E, T>;
}

export interface DecodedStreamOptions<E, T> {
  /** Sends the request and answers with the upstream's events (the first-byte timer is the caller's). */
  open: () => Promise<OpenedStream<E, T>>;
  /** Reads the next event (under the idle timeout, where the events do not keep one themselves). */
  read: (events: AsyncIterator<E>) => Promise<IteratorResult<E>>;
  deadline: UpstreamDeadline;
  /** An error of the call in the gateway's words, before the deadline's own reading of it. */
  toError?: (err: unknown) => unknown;
}

/**
 * "Read until the first event, then relay under the deadline": settles once the decoder has
 * given its first items, so that a failure the upstream sends as its first event (overloaded,
 * throttled) can still fall through to the next route (`fallback: true`); what follows is read
 * as the caller pulls. A failure after that is thrown by the iterator; returning early (the client
 * went away) or finishing aborts the upstream call and releases its timers.
 */
export async function openDecodedStream<E, T>(options: DecodedStreamOptions<E, T>): Promise<AsyncIterable<T>> {
  const { deadline, read } = options;
  const toError = options.toError ?? ((err: unknown) => err);
  let opened: OpenedStream<E, T>;
  let first: T[] = [];
  try {
    opened = await options.open();
    while (first.length === 0) {
      const next = await read(opened.events);
      if (next.done) {
        opened.decoder.end();
        break;
      }
      first = opened.decoder.push(next.value);
    }
  } catch (err) {
    deadline.dispose(true);
    throw deadline.failure(toError(err), true);
  }
  return relay(first, opened, options, toError);
}

async function* relay<E, T>(first: T[], { events, decoder }: OpenedStream<E, T>, { read, deadline }: DecodedStreamOptions<E, T>, toError: (err: unknown) => unknown): AsyncGenerator<T> {
  try {
    yield* first;
    while (!decoder.finished) {
      let next: IteratorResult<E>;
      try {
        next = await read(events);
        // An aborted body may just end: the deadline says whether it was a timeout.
        if (next.done) decoder.end();
      } catch (err) {
        throw deadline.failure(toError(err), false);
      }
      if (next.done) return;
      yield* decoder.push(next.value);
    }
  } finally {
    deadline.dispose(true);
    await events.return?.().catch(() => undefined);
  }
}
