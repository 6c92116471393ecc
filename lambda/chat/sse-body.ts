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

/**
 * The one pull-based SSE body of every endpoint (issue 18): each item the client is to get becomes
 * frames by `encode` (an answer event through the wire's encoder, or a relayed frame untouched),
 * written by `core/sse.ts`; after the last item, `terminals.ended()`; when the upstream fails after
 * the first byte, `terminals.failed(error)`; when `encode` throws, the stream is failed (`fail`,
 * the upstream stopped and what it delivered billed) and the client gets the same terminal. The
 * client going away (the body cancelled) reaches the source's `return()`. One pull enqueues the
 * frames of one item (items without frames are skipped), so a slow client holds the upstream back
 * only as far as the metered stream's buffer.
 */
export function sseBody<T>(items: SseSource<T>, encode: (item: T) => ReadonlyArray<SseFrame>, terminals: SseTerminals): ReadableStream<Uint8Array> {
  const failed = async (controller: ReadableStreamDefaultController<Uint8Array>, error: GatewayError) => {
    controller.enqueue(sseBytes(await terminals.failed(streamError(error))));
    controller.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let next: IteratorResult<T>;
        try {
          next = await items.next();
        } catch (err) {
          // The metered stream has ended and settled itself.
          await failed(controller, err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err }));
          return;
        }
        let frames: ReadonlyArray<SseFrame>;
        try {
          frames = next.done ? await terminals.ended() : encode(next.value);
        } catch (err) {
          const error = err instanceof GatewayError ? err : internalError(err);
          await items.fail?.(error);
          await failed(controller, error);
          return;
        }
        if (frames.length) controller.enqueue(sseBytes(frames));
        if (next.done) {
          controller.close();
          return;
        }
        if (frames.length) return;
      }
    },
    async cancel() {
      await items.return();
    },
  });
}

/** A GatewayError as the terminal frames of every wire carry it. */
export function streamError(error: GatewayError): StreamError {
  return { status: error.status, type: error.type, code: error.code, param: error.param, message: error.message };
}
