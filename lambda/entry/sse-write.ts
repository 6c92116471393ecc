import type { ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import type { DirectSse, SseBytes } from '../chat/sse-body';

/**
 * An SSE answer written straight to Node's response (local mode, issue 22): the status and headers,
 * then each item's bytes as the body gives them (the headers leave with the first), the same bytes
 * its Web stream would give, without building, pulling and reading one on the way to the first
 * byte. Never throws: a body that fails mid-way has written its own terminal frames; a write that
 * fails is a client gone.
 */
export async function writeSseToNode({ status, headers, body }: DirectSse, out: ServerResponse): Promise<void> {
  // Corks held before the first write (none but Node's own, normally): only the write's own is undone.
  let corked = 0;
  const begin = () => {
    out.writeHead(status, headers);
    corked = out.socket?.writableCorked ?? 0;
  };
  await writeSseBytes(body, out, begin, () => out.destroyed || out.socket?.destroyed === true, () => flushCorked(out, corked));
}

/**
 * Hands what a response has written to its socket now. Node corks the socket on a response's
 * write and uncorks it in a `process.nextTick`, which runs only once every microtask queued
 * meanwhile is done: the metered stream's next read, its timers, the layers returning. Done for
 * the first frame only (issue 22: it is the first byte; later frames coming together still leave
 * in one write). Node's own uncork then finds nothing corked and does nothing.
 */
function flushCorked(out: ServerResponse, corkedBefore: number): void {
  const socket = out.socket;
  if (socket && socket.writableCorked > corkedBefore) socket.uncork();
}

/**
 * An SSE body's bytes written to a Node stream as the body gives them (the local server's response,
 * the Lambda runtime's response stream): `begin` writes whatever goes first (Node's status line and
 * headers; nothing on Lambda, whose prelude is already written). A client that does not keep up is
 * waited for (`drain`). A client that goes away (the stream closes or fails before its end)
 * cancels the body at once, as a Web body piped to it would be: the upstream is stopped and what
 * it sent billed. Resolves `true` once every byte was handed over and the stream ended, `false`
 * when the client went away (the body cancelled, that cancellation awaited). Never throws.
 */
export async function writeSseBytes(
  body: SseBytes,
  out: Writable,
  begin: () => void,
  closed: () => boolean = () => out.destroyed,
  /** Called once, right after the first bytes are written (local mode sends them at once). */
  wroteFirst?: () => void,
): Promise<boolean> {
  let first = true;
  let ending = false;
  let cancelled: Promise<unknown> | undefined;
  const gone = () => {
    if (!ending) cancelled ??= body.cancel().catch(() => undefined);
  };
  out.on('close', gone);
  // Left on once the answer is written: an error the stream still emits then is no one's to throw.
  out.on('error', gone);
  try {
    // Gone before its answer (its close already emitted): nothing is written.
    if (closed()) gone();
    else begin();
    while (!cancelled) {
      const bytes = await body.next();
      if (bytes === undefined || cancelled) break;
      if (closed()) {
        gone();
        break;
      }
      const more = out.write(bytes);
      if (first) {
        first = false;
        wroteFirst?.();
      }
      if (!more) await drained(out, closed);
    }
    if (!cancelled) {
      ending = true;
      out.end();
    }
  } catch {
    // A write on a stream already torn down: the client went away.
    gone();
    out.destroy();
  } finally {
    out.off('close', gone);
    await cancelled;
  }
  return !cancelled;
}

/** Resolves once the stream can take more, or has closed (the loop then stops at its next read). */
function drained(out: Writable, closed: () => boolean): Promise<void> {
  if (closed()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}
