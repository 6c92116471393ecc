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
  await writeSseBytes(body, out, () => out.writeHead(status, headers), () => out.destroyed || out.socket?.destroyed === true);
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
export async function writeSseBytes(body: SseBytes, out: Writable, begin: () => void, closed: () => boolean = () => out.destroyed): Promise<boolean> {
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
      if (!out.write(bytes)) await drained(out, closed);
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
