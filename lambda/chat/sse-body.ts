import { GatewayError, internalError, upstreamError } from '../contract/errors';
import { sseBytes, type SseFrame, type StreamError } from '../core/sse';

/** What an SSE body reads: a metered stream (its `return` is the client going away, `fail` an encoding it cannot go on with). */
export interface SseSource<T> {
  next(): Promise<IteratorResult<T>>;
  return(): Promise<unknown>;
  fail?(error: GatewayError): Promise<void>;
}

/**
 * A wire's `StreamTerminals`, whose frames may wait for something (Responses writes its stored
 * response first, then `response.completed` / `response.failed` carrying it).
 */
export interface SseTerminals {
  ended(): ReadonlyArray<SseFrame> | Promise<ReadonlyArray<SseFrame>>;
  failed(error: StreamError): ReadonlyArray<SseFrame> | Promise<ReadonlyArray<SseFrame>>;
}

/** A relayed upstream frame, untouched: its event name and data as sent. */
export function relayedFrame(item: { event?: string; data: string }): SseFrame[] {
  return [{ ...(item.event !== undefined && { event: item.event }), data: item.data, raw: true }];
}

/** Marks an `SseBody`: what `scopedResponse` makes an `sseResponse` of (no other object with these methods is one). */
const SSE_BODY = Symbol('itapi.sseBody');

/** An SSE body as the entries and `sseResponse` read it, whatever its items. */
export interface SseBytes {
  readonly [SSE_BODY]: true;
  next(): Promise<Uint8Array | undefined>;
  cancel(): Promise<unknown>;
  stream(): ReadableStream<Uint8Array>;
}

/**
 * The one pull-based SSE body of every endpoint (issue 18): each item the client is to get becomes
 * frames by `encode` (an answer event through the wire's encoder, or a relayed frame untouched),
 * written by `core/sse.ts`; after the last item, `terminals.ended()`; when the upstream fails after
 * the first byte, `terminals.failed(error)`; when `encode` throws, the stream is failed (`fail`,
 * the upstream stopped and what it delivered billed) and the client gets the same terminal. The
 * client going away (`cancel`) reaches the source's `return()`. One read gives the frames of one
 * item (items without frames are skipped), so a slow client holds the upstream back only as far
 * as the metered stream's buffer.
 *
 * Read two ways, the same bytes either way: as a Web `ReadableStream` (`stream()`: what a
 * `Response`'s body is), or directly by an entry that writes to its socket (`next()`, issue 22:
 * no Web stream built, pulled and read on the way to the first byte; lambda/entry/sse-write.ts).
 */
export class SseBody<T = unknown> implements SseBytes {
  readonly [SSE_BODY] = true as const;
  private ended = false;

  constructor(
    private readonly items: SseSource<T>,
    private readonly encode: (item: T) => ReadonlyArray<SseFrame>,
    private readonly terminals: SseTerminals,
  ) {}

  /** The bytes of the next item that has frames (the terminal's after the last); undefined once the body has ended. */
  async next(): Promise<Uint8Array | undefined> {
    if (this.ended) return undefined;
    for (;;) {
      let next: IteratorResult<T>;
      try {
        next = await this.items.next();
      } catch (err) {
        // The metered stream has ended and settled itself.
        return this.failed(err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err }));
      }
      let frames: ReadonlyArray<SseFrame>;
      try {
        frames = next.done ? await this.terminals.ended() : this.encode(next.value);
      } catch (err) {
        const error = err instanceof GatewayError ? err : internalError(err);
        await this.items.fail?.(error);
        return this.failed(error);
      }
      if (next.done) {
        this.ended = true;
        return frames.length ? sseBytes(frames) : undefined;
      }
      if (frames.length) return sseBytes(frames);
    }
  }

  /** The client went away. */
  cancel(): Promise<unknown> {
    return this.items.return();
  }

  /** The body as a Web stream: one pull, one `next()`. */
  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const bytes = await this.next();
        if (bytes) controller.enqueue(bytes);
        if (this.ended) controller.close();
      },
      cancel: async () => {
        await this.cancel();
      },
    });
  }

  private async failed(error: GatewayError): Promise<Uint8Array> {
    this.ended = true;
    return sseBytes(await this.terminals.failed(streamError(error)));
  }
}

/** Whether an answer's body is an SSE body (`scopedResponse` makes it an `SseResponse`). */
export function isSseBody(body: unknown): body is SseBytes {
  return typeof body === 'object' && body !== null && (body as Partial<SseBytes>)[SSE_BODY] === true;
}

/** An endpoint's SSE body over its metered stream (see `SseBody`). */
export function sseBody<T>(items: SseSource<T>, encode: (item: T) => ReadonlyArray<SseFrame>, terminals: SseTerminals): SseBody<T> {
  return new SseBody(items, encode, terminals);
}

/** How an entry takes an `sseResponse`'s body for a direct write. */
const TAKE_SSE_BODY = Symbol('itapi.takeSseBody');

/**
 * A `Response` whose body is an SSE body: a Web stream built only when something reads the body
 * (`body`, `text()`, …, as Hono's test client and the app's middleware may), and otherwise given
 * whole to an entry that writes it to its socket (`takeSseBody`). Status and headers are the
 * Response's own, as any other.
 */
export function sseResponse(body: SseBytes, init: SseInit): Response {
  return new (sseResponseClass())(body, init);
}

/** An `sseResponse` as an entry writes it itself: its status, its headers as a plain record, its body. */
export interface DirectSse {
  status: number;
  headers: Record<string, string>;
  body: SseBytes;
}

/** The SSE answer an entry may write to its socket itself: once, and only while no one has asked for its Web body. */
export function takeSseBody(response: Response): DirectSse | undefined {
  return (response as { [TAKE_SSE_BODY]?: () => DirectSse | undefined })[TAKE_SSE_BODY]?.();
}

type SseInit = { status: number; headers: Record<string, string> };
type SseResponseClass = new (body: SseBytes, init: SseInit) => Response;
let SseResponse: SseResponseClass | undefined;

/**
 * Made on first use: reading the global `Response` loads Node's fetch implementation (and
 * node:zlib), which a Lambda instance must not pay for at init (test/lambda/cold-start.test.ts).
 */
function sseResponseClass(): SseResponseClass {
  return (SseResponse ??= class SseResponse extends Response {
    #sse: SseBytes | undefined;
    #web: Response | undefined;
    /**
     * The headers as given, while no one has read `headers` (which may change them): the entry
     * writes them without a `Headers` built and read back. The `Headers` is filled from them on its
     * first read only: built at once (by `Response`'s own constructor), it validated every header
     * on the way to the first byte for nothing (issue 22).
     */
    #given: Record<string, string> | undefined;

    constructor(body: SseBytes, init: SseInit) {
      super(null, { status: init.status });
      this.#sse = body;
      this.#given = init.headers;
    }

    override get headers(): Headers {
      const headers = super.headers;
      const given = this.#given;
      if (given) {
        this.#given = undefined;
        for (const name of Object.keys(given)) headers.append(name, given[name]);
      }
      return headers;
    }

    [TAKE_SSE_BODY](): DirectSse | undefined {
      const body = this.#web ? undefined : this.#sse;
      if (!body) return undefined;
      let headers = this.#given;
      if (!headers) {
        // Cookies (none of the endpoints sets one) go the usual way, which writes them as they are.
        if (this.headers.has('set-cookie')) return undefined;
        headers = {};
        for (const [name, value] of this.headers) headers[name] = value;
      }
      this.#sse = undefined;
      return { status: this.status, headers, body };
    }

    #webResponse(): Response {
      if (!this.#web) {
        const body = this.#sse;
        this.#sse = undefined;
        this.#web = new Response(body ? (body.stream() as ReadableStream<Uint8Array<ArrayBuffer>>) : null, {
          status: this.status,
          statusText: this.statusText,
          headers: this.headers,
        });
      }
      return this.#web;
    }

    override get body(): Response['body'] {
      return this.#webResponse().body;
    }

    override get bodyUsed(): boolean {
      return this.#web?.bodyUsed ?? false;
    }

    override arrayBuffer(): Promise<ArrayBuffer> {
      return this.#webResponse().arrayBuffer();
    }

    override blob(): Promise<Blob> {
      return this.#webResponse().blob();
    }

    override bytes(): Promise<Uint8Array<ArrayBuffer>> {
      return this.#webResponse().bytes();
    }

    override formData(): Promise<FormData> {
      return this.#webResponse().formData();
    }

    override json(): Promise<unknown> {
      return this.#webResponse().json();
    }

    override text(): Promise<string> {
      return this.#webResponse().text();
    }

    override clone(): Response {
      return this.#webResponse().clone();
    }
  });
}

/** A GatewayError as the terminal frames of every wire carry it. */
export function streamError(error: GatewayError): StreamError {
  return { status: error.status, type: error.type, code: error.code, param: error.param, message: error.message };
}
