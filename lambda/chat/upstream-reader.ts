import { GatewayError } from '../contract/errors';

/** Items read ahead of a client that does not keep up, before the request is ended. */
export const DEFAULT_MAX_BUFFERED = 16_384;

/** The error a client gets (if it ever reads again) when it fell `max` items behind the upstream. */
export function clientTooSlow(max: number): GatewayError {
  return new GatewayError(
    502,
    'api_error',
    'client_too_slow',
    `The client stopped reading while the upstream went on: ${max} events were waiting for it, and the request was ended.`,
  );
}

export interface UpstreamReaderOptions<In, Out> {
  /** Meters one item as it comes from the upstream (whatever the client does) and returns what the client is to get. Throwing fails the stream. */
  observe(item: In): Out;
  /** The upstream failed, or the client fell too far behind: called once, as it happens; returns the error the client is to get. */
  onFailure(error: unknown): unknown;
  /** @default DEFAULT_MAX_BUFFERED */
  maxBuffered?: number;
}

/**
 * Reads an upstream at its own pace, whatever the client does, into a bounded buffer the client
 * drains with `next`: the meter sees what the provider sent, not what the client read, so a
 * client that stops reading but keeps its socket open does not get the stream for free. A client
 * `maxBuffered` items behind ends the request (the upstream is stopped; what was read is billed).
 */
export class UpstreamReader<In, Out> {
  private readonly buffer: Out[] = [];
  private finished: { error?: unknown } | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  private readonly maxBuffered: number;

  constructor(
    private readonly upstream: AsyncIterator<In>,
    first: IteratorResult<In> | undefined,
    private readonly options: UpstreamReaderOptions<In, Out>,
  ) {
    this.maxBuffered = options.maxBuffered ?? DEFAULT_MAX_BUFFERED;
    void this.pump(first);
  }

  /** Items read from the upstream and not yet taken by the client. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** True once the upstream has ended (completed or failed). */
  get upstreamEnded(): boolean {
    return this.finished !== undefined;
  }

  /** The next item for the client; the upstream's end (`done`) or failure once the buffer is drained. */
  async next(): Promise<IteratorResult<Out>> {
    for (;;) {
      if (this.buffer.length) return { done: false, value: this.buffer.shift()! };
      if (this.finished) {
        if (this.finished.error !== undefined) throw this.finished.error;
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The client is gone: stop reading the upstream. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.finish({ error: undefined });
    await this.upstream.return?.().catch(() => undefined);
  }

  private async pump(first: IteratorResult<In> | undefined): Promise<void> {
    let next = first;
    try {
      for (;;) {
        next ??= await this.upstream.next();
        if (this.stopped) return;
        if (next.done) {
          this.finish({});
          return;
        }
        this.buffer.push(this.options.observe(next.value));
        const wasFirst = next === first;
        next = undefined;
        this.notify();
        // The first item (read with the upstream's head) goes to the client before the next read
        // is started: that read waits, with its idle timer, and would otherwise be set up on the
        // way to the first byte (issue 22). The upstream's bytes are taken as they come meanwhile.
        if (wasFirst) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (this.stopped) return;
        }
        if (this.buffer.length > this.maxBuffered) {
          const error = clientTooSlow(this.maxBuffered);
          this.fail(error);
          this.stopped = true;
          await this.upstream.return?.().catch(() => undefined);
          return;
        }
      }
    } catch (err) {
      if (!this.stopped) this.fail(err);
    }
  }

  private fail(error: unknown): void {
    if (this.finished) return;
    this.finish({ error: this.options.onFailure(error) ?? error });
  }

  private finish(state: { error?: unknown }): void {
    this.finished ??= state;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
