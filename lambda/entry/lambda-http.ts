import type { APIGatewayProxyEvent, LambdaFunctionURLEvent } from 'aws-lambda';
import { finished, pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { takeSseBody } from '../chat/sse-body';
import { writeSseBytes } from './sse-write';

/**
 * What the Lambda runtime's `awslambda` global offers a streaming handler (Node.js runtimes,
 * response streaming): `streamifyResponse` marks the handler, `HttpResponseStream.from` writes the
 * HTTP prelude (status, headers, cookies) that Function URLs and API Gateway's STREAM mode read.
 */
export interface StreamingRuntime {
  streamifyResponse(handler: StreamingHandler): StreamingHandler;
  HttpResponseStream: { from(stream: Writable, prelude: HttpPrelude): Writable };
}

export type StreamingHandler = (event: unknown, responseStream: Writable, context: unknown) => Promise<void>;

export interface HttpPrelude {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
}

/** The runtime's global, checked once at init so that a runtime without streaming fails there with a reason, not on every request. */
export function streamingRuntime(): StreamingRuntime {
  const runtime = (globalThis as unknown as { awslambda?: Partial<StreamingRuntime> }).awslambda;
  if (typeof runtime?.streamifyResponse !== 'function' || typeof runtime.HttpResponseStream?.from !== 'function') {
    throw new Error(
      'itapi chat handler: the Lambda runtime global `awslambda` with streamifyResponse and HttpResponseStream is missing; ' +
        'deploy it on a Node.js managed runtime (nodejs24.x) with invoke mode RESPONSE_STREAM.',
    );
  }
  return runtime as StreamingRuntime;
}

type HttpEvent = LambdaFunctionURLEvent | APIGatewayProxyEvent;

function isFunctionUrlEvent(event: HttpEvent): event is LambdaFunctionURLEvent {
  return 'rawPath' in event && typeof (event.requestContext as { http?: unknown })?.http === 'object';
}

/**
 * A Function URL (payload 2.0) or API Gateway REST proxy (payload 1.0) event as a Web Request.
 * A POST to the JSON API (`/v1/…`, whose routes read their body with `readJsonBody` alone) gets
 * a Request without a body and the event's bytes beside it (`body`): the app reads them as they
 * are, with no Web body built and read on the way to the upstream call (issue 22). Any other
 * request (the console's forms and webhooks) carries its body in the Request.
 */
export function requestFromEvent(event: HttpEvent): { request: Request; body?: Buffer } {
  const headers = new Headers();
  let method: string;
  let url: string;
  if (isFunctionUrlEvent(event)) {
    for (const [name, value] of Object.entries(event.headers ?? {})) if (value !== undefined) headers.set(name, headerSafe(value));
    if (event.cookies?.length) headers.set('cookie', event.cookies.join('; '));
    method = event.requestContext.http.method;
    const host = event.requestContext.domainName ?? headers.get('host');
    url = `https://${host}${event.rawPath}${event.rawQueryString ? `?${event.rawQueryString}` : ''}`;
  } else {
    for (const [name, values] of Object.entries(event.multiValueHeaders ?? {})) for (const v of values ?? []) headers.append(name, headerSafe(v));
    for (const [name, value] of Object.entries(event.headers ?? {})) if (value !== undefined && !headers.has(name)) headers.set(name, headerSafe(value));
    method = event.httpMethod;
    const query = new URLSearchParams();
    for (const [name, values] of Object.entries(event.multiValueQueryStringParameters ?? {})) for (const v of values ?? []) query.append(name, v);
    if (!event.multiValueQueryStringParameters) for (const [name, v] of Object.entries(event.queryStringParameters ?? {})) if (v !== undefined) query.append(name, v);
    const search = query.toString();
    url = `https://${event.requestContext?.domainName ?? headers.get('host')}${event.path}${search ? `?${search}` : ''}`;
  }
  const body = event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8') : undefined;
  if (body) headers.set('content-length', String(body.byteLength));
  if (method === 'GET' || method === 'HEAD') return { request: new Request(url, { method, headers }) };
  // The path as the Request normalises it (`/v1/../console` is `/console`), which is what Hono routes on.
  if (method === 'POST' && new URL(url).pathname.startsWith(JSON_API_PREFIX)) return { request: new Request(url, { method, headers }), body: body ?? Buffer.alloc(0) };
  return { request: new Request(url, { method, headers, body }) };
}

/** The JSON API's paths: every POST route under it reads its body with `readJsonBody` (lambda/app.ts). */
export const JSON_API_PREFIX = '/v1/';

/** Headers hold bytes 0–255 only; the runtime hands over decoded strings, so anything else is percent-encoded rather than thrown on. */
function headerSafe(value: string): string {
  return /[^\x00-\xff]/.test(value) ? encodeURIComponent(value) : value;
}

/**
 * Writes the prelude, then the body chunk by chunk as the app produces it. If the stream to the
 * client fails (it went away), the body is cancelled and the cancellation awaited, so the app has
 * stopped its upstream and scheduled its settlement before this returns.
 */
export async function writeResponse(runtime: StreamingRuntime, responseStream: Writable, response: Response): Promise<void> {
  // An SSE answer's bytes as the body gives them (issue 22), not through a Web stream.
  const sse = takeSseBody(response);
  const headers: Record<string, string> = sse?.headers ?? {};
  if (!sse) {
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') headers[name] = value;
    });
  }
  const out = runtime.HttpResponseStream.from(responseStream, { statusCode: response.status, headers, cookies: sse ? [] : response.headers.getSetCookie() });
  if (sse) {
    // Written as the body gives its bytes, as the local server writes them (no pipeline, no async
    // generator between the upstream's first event and the runtime's stream: issue 22).
    // Watched from before its end: the runtime's stream is a thin wrapper whose `finished` would
    // otherwise resolve at `end()`, not once the bytes are flushed (as `pipeline`'s watcher did).
    const flushed = finished(out);
    flushed.catch(() => undefined);
    if (!(await writeSseBytes(sse.body, out, () => undefined))) throw new Error('The client went away before the end of the answer.');
    await flushed;
    return;
  }
  if (!response.body) {
    // The runtime sends the prelude with the first write: an empty body still needs one.
    out.write('');
    out.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    await pipeline(async function* bodyChunks() {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    }, out);
  } catch (err) {
    await reader.cancel(err).catch(() => undefined);
    throw err;
  }
}
