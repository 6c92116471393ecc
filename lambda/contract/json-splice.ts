import { isUtf8 } from 'node:buffer';
import { isDeepStrictEqual } from 'node:util';

/**
 * A request body as the client sent it: its bytes and what `JSON.parse` made of them. A provider
 * of the client's own wire sends the bytes of a top-level field as they came where its encoder
 * would send the same value (`spliceJson`): a coding agent's 100,000-character history is then
 * neither serialised again nor encoded to UTF-8 again (issue 22, item 2).
 */
export interface JsonSource {
  bytes: Buffer;
  value: Record<string, unknown>;
}

/** Below this many bytes a field's value is serialised: copying it saves nothing worth the walk. */
export const SPLICE_MIN_BYTES = 2048;

interface Span {
  start: number;
  end: number;
  /** Object keys written inside the value (duplicates included). */
  keys: number;
}

/**
 * `encoded` as JSON: each top-level value that came from the client unchanged (`isDeepStrictEqual`
 * to the parsed body's, at least `minBytes` long) copied from the client's bytes, the rest
 * serialised. Copied only when the bytes mean exactly that value to any parser: valid UTF-8 (so
 * the text parsed is the bytes sent), and no object in the span naming a key twice (JSON.parse
 * keeps the last; another parser may keep the first, and then read what the gateway never saw).
 * The keys' order is `encoded`'s. Undefined values are left out, as `JSON.stringify` leaves them.
 */
export function spliceJson(encoded: Record<string, unknown>, source: JsonSource | undefined, minBytes = SPLICE_MIN_BYTES): string | Buffer {
  const spans = source && source.bytes.length >= minBytes ? clientSpans(source.bytes) : undefined;
  if (!spans) return JSON.stringify(encoded);
  const parts: Buffer[] = [];
  let text = '{';
  let copied = false;
  for (const key of Object.keys(encoded)) {
    const value = encoded[key];
    if (value === undefined) continue;
    if (text.length > 1 || parts.length) text += ',';
    text += `${JSON.stringify(key)}:`;
    const span = spans.get(key);
    const clientValue = source!.value[key];
    if (span && span.end - span.start >= minBytes && keyCount(clientValue) === span.keys && isDeepStrictEqual(value, clientValue)) {
      parts.push(Buffer.from(text), source!.bytes.subarray(span.start, span.end));
      text = '';
      copied = true;
    } else {
      text += JSON.stringify(value);
    }
  }
  if (!copied) return JSON.stringify(encoded);
  parts.push(Buffer.from(`${text}}`));
  return Buffer.concat(parts);
}

/** The spans of the body's top-level values by key (the last of a key written twice, as JSON.parse keeps), or undefined for bytes that are not UTF-8 or not an object. */
function clientSpans(bytes: Buffer): Map<string, Span> | undefined {
  if (!isUtf8(bytes)) return undefined;
  try {
    return topLevelSpans(bytes);
  } catch {
    return undefined;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * One pass over a JSON object's bytes (already parsed once, so known to be JSON): strings skipped
 * with `indexOf` (native), brackets counted between them. Multi-byte UTF-8 never holds a byte
 * below 0x80, so the ASCII punctuation read here is the text's own.
 */
export function topLevelSpans(bytes: Buffer): Map<string, Span> | undefined {
  const n = bytes.length;
  let i = 0;
  while (i < n && isSpace(bytes[i])) i++;
  if (bytes[i] !== 0x7b) return undefined;
  i++;
  const spans = new Map<string, Span>();
  let depth = 1;
  let key: string | undefined;
  let start = -1;
  let keys = 0;
  const close = (at: number) => {
    if (key === undefined) return;
    let end = at;
    while (end > start && isSpace(bytes[end - 1])) end--;
    spans.set(key, { start, end, keys });
    key = undefined;
  };
  while (i < n) {
    const c = bytes[i];
    if (c === QUOTE) {
      const last = stringEnd(bytes, i);
      if (last < 0) return undefined;
      let next = last + 1;
      while (next < n && isSpace(bytes[next])) next++;
      const isKey = bytes[next] === COLON;
      if (isKey && depth === 1) {
        key = keyText(bytes, i, last);
        next++;
        while (next < n && isSpace(bytes[next])) next++;
        start = next;
        keys = 0;
      } else if (isKey) {
        keys++;
        next++;
      }
      i = next;
      continue;
    }
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) {
        close(i);
        return spans;
      }
    } else if (c === COMMA && depth === 1) close(i);
    i++;
  }
  return undefined;
}

/** The index of the quote that ends the string opened at `open` (one not escaped by an odd run of backslashes). */
function stringEnd(bytes: Buffer, open: number): number {
  let at = open;
  for (;;) {
    at = bytes.indexOf(QUOTE, at + 1);
    if (at < 0) return -1;
    let slashes = 0;
    while (bytes[at - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return at;
  }
}

function keyText(bytes: Buffer, open: number, last: number): string {
  const raw = bytes.toString('utf8', open, last + 1);
  return raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
}

/** The object keys in a parsed JSON value, all levels (each object's own, JSON.parse makes no others). */
function keyCount(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value) count += keyCount(item);
    return count;
  }
  for (const key in value as Record<string, unknown>) {
    count += 1 + keyCount((value as Record<string, unknown>)[key]);
  }
  return count;
}
