import { createHash, hash, randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SECRET_LENGTH = 40;

export const API_KEY_PATTERN = /^it_[0-9A-Za-z]{32,128}$/;

/** `it_` plus 40 base62 characters (about 238 bits), drawn without modulo bias. */
export function generateApiKey(): string {
  let out = 'it_';
  while (out.length < 3 + SECRET_LENGTH) {
    for (const byte of randomBytes(64)) {
      if (byte < 248 && out.length < 3 + SECRET_LENGTH) out += BASE62[byte % 62];
    }
  }
  return out;
}

/**
 * Only this hash is ever stored. Node's one-shot `crypto.hash` (Node 20.12 and later) where there
 * is one: about a third of a `Hash` object's time, on every request's way to its upstream call
 * (issue 22); a `Hash` object on an older Node 20.
 */
export function hashApiKey(key: string): string {
  return typeof hash === 'function' ? hash('sha256', key, 'hex') : createHash('sha256').update(key).digest('hex');
}

/** What admins see of a key: `it_Ab3…xYz9`. */
export function displayPrefix(key: string): string {
  return `${key.slice(0, 6)}…${key.slice(-4)}`;
}
