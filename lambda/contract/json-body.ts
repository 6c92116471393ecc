import type { Readable } from 'node:stream';
import { GatewayError, invalidRequest, requestTooLarge, upstreamError } from './errors';
import type { JsonSource } from './json-splice';

/**
 * How much of an oversized body is read and dropped before the 413 goes out. Answering and closing
 * while the client still sends makes its next writes meet a reset, which throws away the 413 it
 * has not read yet (clients that send the whole body first, as Python's do, never see it).
 */
export const MAX_DISCARDED_BODY_BYTES = 64 * 1024 * 1024;

/**
 * JSON.parse takes any depth, but JSON.stringify (token estimate, upstream body) recurses and
 * overflowed the stack at about 4,000 levels: a 500 for bad input. No real schema comes close.
 */
const MAX_JSON_DEPTH = 128;

/**
 * Where the body may be at hand without the Request's Web stream: the Node request under it (local
 * mode), whose body, when already in whole, is taken at once; or the body's bytes themselves (the
 * Lambda entry's, handed beside a Request built without them).
 */
export type BodyAtHand = (Readable & { complete: boolean }) | Uint8Array;

/**
 * The request's JSON body, at most `maxBytes` of it: 415 for another content type, 413 above the
 * limit, 400 for bad JSON.
 */
export async function readJsonBody(request: Request, maxBytes: number, atHand?: BodyAtHand): Promise<unknown> {
  const type = request.headers.get('content-type');
  if (type && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new GatewayError(415, 'invalid_request_error', 'unsupported_content_type', `Unsupported content type '${type.slice(0, 100)}': send application/json.`);
  }
  const bytes = await readBodyWithin(request, maxBytes, atHand);
  const text = bytes.toString('utf8');
  if (!text.trim()) throw invalidRequest('The request body is empty: send a JSON object.', null, 'invalid_json');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalidRequest('We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.', null, 'invalid_json');
  }
  if (nestedDeeperThan(body, MAX_JSON_DEPTH)) {
    throw invalidRequest(`The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels.`, null, 'invalid_json');
  }
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) sources.set(body, { bytes, text });
  return body;
}

/** The bytes and text each body object `readJsonBody` returned was parsed from, while that object lives. */
const sources = new WeakMap<object, { bytes: Buffer; text: string }>();

/**
 * A body `readJsonBody` returned, with the bytes it was parsed from (`spliceJson` copies from them
 * what a provider of the same wire sends unchanged); undefined for any other value.
 */
export function jsonSourceOf(body: unknown): JsonSource | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const source = sources.get(body);
  return source && { ...source, value: body as Record<string, unknown> };
}

async function readBodyWithin(request: Request, maxBytes: number, atHand?: BodyAtHand): Promise<Buffer> {
  if (atHand instanceof Uint8Array) {
    if (atHand.byteLength > maxBytes) throw requestTooLargeClosing(maxBytes);
    return Buffer.from(atHand.buffer, atHand.byteOffset, atHand.byteLength);
  }
  const incoming = atHand;
  const declaredBytes = Number(request.headers.get('content-length') ?? Number.NaN);
  // A declared length within the limit: the body is read whole (HTTP's framing stops it at that
  // length; a body that is larger anyway, as a Lambda event may carry, is still refused below).
  // Read so, Hono's Node adapter hands over the socket's bytes without building a Web Request and
  // its stream (issue 22: about 0.2 CPU-ms of a local request); the Lambda entry's Request reads
  // the same. Chunked bodies and lengths above the limit take the stream, which stops at the limit.
  if (declaredBytes <= maxBytes) {
    const whole = incoming && bufferedWhole(incoming, declaredBytes);
    if (whole) return whole;
    const bytes = await request.arrayBuffer();
    if (bytes.byteLength > maxBytes) throw requestTooLargeClosing(maxBytes);
    return Buffer.from(bytes);
  }
  if (!request.body) return Buffer.alloc(0);
  const reader = request.body.getReader();
  if (declaredBytes > maxBytes) throw await tooLarge(reader, maxBytes, 0);
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) throw await tooLarge(reader, maxBytes, size);
    parts.push(value);
  }
  return Buffer.concat(parts, size);
}

/**
 * A body that came whole with its head (as a chat request's usually does: one packet), read now
 * instead of through listeners and a tick of the stream (issue 22); undefined otherwise, nothing
 * read. Only when every declared byte is buffered: HTTP's framing pushes no byte past the declared
 * length, so the one read takes exactly the body. Node's parser marks the message complete only in
 * a callback after the ticks that follow the body's push, which is after the microtasks a request
 * with its key cached reaches this read in: the message need not be complete yet. The stream is
 * then left flowing, so that it still ends (`end`) when the parser completes it: Hono's Node
 * adapter drains a request that has not ended once its answer is sent.
 */
function bufferedWhole(incoming: Readable & { complete: boolean }, declaredBytes: number): Buffer | undefined {
  if (incoming.readableDidRead || incoming.readableFlowing === true || incoming.readableEncoding !== null || incoming.readableObjectMode) return undefined;
  if (!(declaredBytes > 0) || incoming.readableLength !== declaredBytes) return undefined;
  // Paused (not flowing), a read without a size takes the whole buffer; once the stream has ended
  // (a complete message), that read also ends it.
  const whole = (incoming.read() as Buffer | null) ?? undefined;
  if (!incoming.complete) incoming.resume();
  return whole;
}

/** Reads and drops the rest of the body up to the bound, then answers 413 and closes the connection. */
async function tooLarge(reader: ReadableStreamDefaultReader<Uint8Array>, maxBytes: number, readBytes: number): Promise<GatewayError> {
  let dropped = readBytes;
  while (dropped <= MAX_DISCARDED_BODY_BYTES) {
    const { done, value } = await reader.read();
    if (done) break;
    dropped += value.byteLength;
  }
  if (dropped > MAX_DISCARDED_BODY_BYTES) await reader.cancel().catch(() => undefined);
  return requestTooLargeClosing(maxBytes);
}

function requestTooLargeClosing(maxBytes: number): GatewayError {
  const error = requestTooLarge(maxBytes);
  // The connection's state after an unread or cut-short body is unknown: never reuse it.
  error.headers.connection = 'close';
  return error;
}

function nestedDeeperThan(root: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** One SSE event's data as JSON; data that is not JSON is the upstream's failure (a 502). */
export function parseStreamEvent(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch (err) {
    throw upstreamError('The upstream sent a stream event that is not JSON.', { cause: err });
  }
}
