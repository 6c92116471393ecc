import { isUtf8 } from 'node:buffer';

/**
 * A request body as the client sent it: its bytes, their text and what `JSON.parse` made of it. A
 * provider of the client's own wire sends the bytes of a top-level field as they came where its
 * encoder would send the same value (`spliceJson`): a coding agent's 100,000-character history is
 * then neither serialised again nor encoded to UTF-8 again (issue 22, item 2).
 */
export interface JsonSource {
  bytes: Buffer;
  /** `bytes` decoded as UTF-8. */
  text: string;
  /** `JSON.parse(text)`, never changed since. */
  value: Record<string, unknown>;
}

/**
 * Lets go of a source's bytes and text once the call that needed them is made (the route loop
 * done: a stream may hold its call for minutes, and a thousand streams their bodies); a splice
 * after that serialises. Only the request's own copy (`jsonSourceOf` makes one each time).
 */
export function letGo(source: JsonSource): void {
  source.bytes = EMPTY;
  source.text = '';
  source.value = {};
}

const EMPTY = Buffer.alloc(0);

/** Below this many characters a field's value is serialised: copying it saves nothing worth the walk. */
export const SPLICE_MIN_CHARS = 2048;

/** A top-level value's place in the text (UTF-16 indices), and the object keys written inside it. */
interface Span {
  start: number;
  end: number;
  /** Object keys written inside the value (a key written twice counts twice). */
  keys: number;
}

/**
 * `encoded` as JSON: each top-level value that came from the client unchanged (`keysIfSame`, and
 * at least `minChars` long) copied from the client's bytes, the rest serialised. Copied only when
 * the bytes mean exactly that value to any parser: valid UTF-8 (so the text parsed is the bytes
 * sent), and no object in the span naming a key twice (JSON.parse keeps the last; another parser
 * may keep the first, and would then read what the gateway never saw). The keys' order is
 * `encoded`'s. Undefined values are left out, as `JSON.stringify` leaves them.
 */
export function spliceJson(encoded: Record<string, unknown>, source: JsonSource | undefined, minChars = SPLICE_MIN_CHARS): string | Buffer {
  const spans = source && source.text.length >= minChars ? clientSpans(source) : undefined;
  if (!spans) return JSON.stringify(encoded);
  const copies: Array<{ span: Span; before: string }> = [];
  let text = '{';
  for (const key of Object.keys(encoded)) {
    const value = encoded[key];
    if (value === undefined) continue;
    if (text.length > 1 || copies.length) text += ',';
    text += `${JSON.stringify(key)}:`;
    const span = spans.get(key);
    if (span && span.end - span.start >= minChars && keysIfSame(value, source!.value[key]) === span.keys) {
      copies.push({ span, before: text });
      text = '';
    } else {
      text += JSON.stringify(value);
    }
  }
  if (!copies.length) return JSON.stringify(encoded);
  return Buffer.concat([...spliced(source!, copies), Buffer.from(`${text}}`)]);
}

/** The serialised text before each copied span, then the span's bytes (text indices turned into byte offsets once, in order). */
function* spliced(source: JsonSource, copies: Array<{ span: Span; before: string }>): Iterable<Buffer> {
  const ascii = source.bytes.length === source.text.length;
  const ordered = [...copies].sort((a, b) => a.span.start - b.span.start);
  const offsets = new Map<Span, [number, number]>();
  let index = 0;
  let offset = 0;
  const byteAt = (at: number) => {
    if (!ascii) offset += Buffer.byteLength(source.text.slice(index, at));
    else offset = at;
    index = at;
    return offset;
  };
  for (const { span } of ordered) offsets.set(span, [byteAt(span.start), byteAt(span.end)]);
  for (const { span, before } of copies) {
    const [start, end] = offsets.get(span)!;
    yield Buffer.from(before);
    yield source.bytes.subarray(start, end);
  }
}

/** The spans of the body's top-level values by key (the last of a key written twice, as JSON.parse keeps), or undefined for bytes that are not UTF-8 or not an object. */
function clientSpans(source: JsonSource): Map<string, Span> | undefined {
  if (!isUtf8(source.bytes)) return undefined;
  return topLevelSpans(source.text);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * One pass over a JSON object's text (already parsed once, so known to be JSON): strings skipped
 * with `indexOf` (a builtin), brackets counted between them.
 */
export function topLevelSpans(text: string): Map<string, Span> | undefined {
  const n = text.length;
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 0x7b) return undefined;
  i++;
  const spans = new Map<string, Span>();
  let depth = 1;
  let key: string | undefined;
  let start = -1;
  let keys = 0;
  const close = (at: number) => {
    if (key === undefined) return;
    let end = at;
    while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
    spans.set(key, { start, end, keys });
    key = undefined;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const last = stringEnd(text, i);
      if (last < 0) return undefined;
      let next = last + 1;
      while (next < n && isSpace(text.charCodeAt(next))) next++;
      const isKey = text.charCodeAt(next) === COLON;
      if (isKey && depth === 1) {
        key = keyText(text, i, last);
        next++;
        while (next < n && isSpace(text.charCodeAt(next))) next++;
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
function stringEnd(text: string, open: number): number {
  let at = open;
  for (;;) {
    at = text.indexOf('"', at + 1);
    if (at < 0) return -1;
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return at;
  }
}

function keyText(text: string, open: number, last: number): string {
  const raw = text.slice(open, last + 1);
  return raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * When `value` serialises to what `parsed` (a JSON.parse result) means: the number of object keys
 * in `parsed`, all levels; otherwise -1. Equal as JSON: the same strings, numbers, booleans and
 * nulls, arrays of the same length and items, objects with the same keys (a key whose value is
 * undefined in `value` counts as absent, as JSON.stringify leaves it out). Anything JSON.stringify
 * would write otherwise (a function, a date, a number that is not finite) is never equal.
 */
export function keysIfSame(value: unknown, parsed: unknown): number {
  if (value === parsed) return parsed !== null && typeof parsed === 'object' ? keysIn(parsed) : typeof parsed === 'number' && !Number.isFinite(parsed) ? -1 : 0;
  if (value === null || parsed === null || typeof value !== 'object' || typeof parsed !== 'object') return -1;
  if (Array.isArray(value)) {
    if (!Array.isArray(parsed) || value.length !== parsed.length) return -1;
    let keys = 0;
    for (let i = 0; i < value.length; i++) {
      const inner = keysIfSame(value[i], parsed[i]);
      if (inner < 0) return -1;
      keys += inner;
    }
    return keys;
  }
  if (Array.isArray(parsed) || Object.getPrototypeOf(value) !== Object.prototype) return -1;
  let keys = 0;
  let defined = 0;
  for (const key in value as Record<string, unknown>) {
    const inner = (value as Record<string, unknown>)[key];
    if (inner === undefined) continue;
    defined++;
    if (!hasOwn.call(parsed, key)) return -1;
    const innerKeys = keysIfSame(inner, (parsed as Record<string, unknown>)[key]);
    if (innerKeys < 0) return -1;
    keys += 1 + innerKeys;
  }
  for (const _key in parsed as Record<string, unknown>) defined--;
  return defined === 0 ? keys : -1;
}

/** The object keys in a JSON.parse result, all levels (each object's own: JSON.parse makes no others). */
function keysIn(parsed: object): number {
  let keys = 0;
  if (Array.isArray(parsed)) {
    for (const item of parsed) if (item !== null && typeof item === 'object') keys += keysIn(item);
    return keys;
  }
  for (const key in parsed as Record<string, unknown>) {
    const inner = (parsed as Record<string, unknown>)[key];
    keys += 1 + (inner !== null && typeof inner === 'object' ? keysIn(inner) : 0);
  }
  return keys;
}
