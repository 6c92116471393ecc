import type { ServerResponse } from 'node:http';
import type { DirectSse } from '../chat/sse-body';

/**
 * An SSE answer written straight to Node's response (local mode, issue 22): the status and headers,
 * then each item's bytes as the body gives them (the headers leave with the first), the same bytes
 * its Web stream would give, without building, pulling and reading one on the way to the first
 * byte. A client that does not keep up is waited for (`drain`). A client that goes away (the
 * response closes before its end) cancels the body at once, as Hono's Node adapter cancels a Web
 * body: the upstream is stopped and what it sent billed. Never throws: a body that fails mid-way
 * has written its own terminal frames; a write that fails is a client gone.
 */
export async function writeSseToNode({ status, headers, body }: DirectSse, out: ServerResponse): Promise<void> {
  let ending = false;
  let cancelled: Promise<unknown> | undefined;
  const gone = () => {
    if (!ending) cancelled ??= body.cancel().catch(() => undefined);
  };
  out.on('close', gone);
  out.on('error', gone);
  try {
    // Gone before its answer (its close already emitted): nothing is written.
    if (closed(out)) gone();
    else out.writeHead(status, headers);
    while (!cancelled) {
      const bytes = await body.next();
      if (bytes === undefined || cancelled) break;
      if (closed(out)) {
        gone();
        break;
      }
      if (!out.write(bytes)) await drained(out);
    }
    if (!cancelled) {
      ending = true;
      out.end();
    }
  } catch {
    // A write on a response already torn down: the client went away.
    gone();
    out.destroy();
  } finally {
    await cancelled;
    out.off('error', gone);
  }
}

function closed(out: ServerResponse): boolean {
  return out.destroyed || out.socket?.destroyed === true;
}

/** Resolves once the response can take more, or has closed (the loop then stops at its next read). */
function drained(out: ServerResponse): Promise<void> {
  if (closed(out)) return Promise.resolve();
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
