import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConsoleGrant, SessionsStore } from '../store/sessions';

/**
 * The console's sign-in: a one-time link proves who the holder is, and a session follows. Other
 * ways to prove it (an OIDC provider) would end in the same `startSession`, with their own `method`.
 * Only SHA-256 hashes of link tokens and session ids are stored; the secrets live in the link and
 * in the browser's cookie.
 */

/** A sign-in link works once, within this time. */
export const SIGN_IN_LINK_TTL_MS = 15 * 60_000;
/** A session ends this long after sign-in, or at sign-out. */
export const SESSION_TTL_MS = 12 * 3600_000;

/** 256 random bits, URL-safe. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** A link token or session id as we issue them: 43 base64url characters. */
export const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** The console's address (`https://…/console/`) with a trailing slash. */
export function consoleBase(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/**
 * A one-time sign-in link for an account: `<console>/sign-in#<token>`. The token rides in the
 * fragment, which browsers never send to a server, so it stays out of every access log and
 * proxy; the sign-in page's script posts it.
 */
export async function createSignInLink(
  sessions: Pick<SessionsStore, 'put'>,
  accountId: string,
  consoleUrl: string,
  nowMs: number,
): Promise<{ url: string; expiresAtMs: number }> {
  const token = newSecret();
  const expiresAtMs = nowMs + SIGN_IN_LINK_TTL_MS;
  await sessions.put({ kind: 'link', hash: secretHash(token), accountId, method: 'link', createdAtMs: nowMs, expiresAtMs });
  return { url: `${consoleBase(consoleUrl)}sign-in#${token}`, expiresAtMs };
}

/** Uses a link (once): the account it signs in, or undefined for an unknown, used or expired link. */
export async function redeemSignInLink(sessions: Pick<SessionsStore, 'useLink'>, token: string, nowMs: number): Promise<ConsoleGrant | undefined> {
  if (!SECRET_PATTERN.test(token)) return undefined;
  return sessions.useLink(secretHash(token), nowMs);
}

/** Starts a session for an account already proven by `method`; returns the secret for the cookie. */
export async function startSession(
  sessions: Pick<SessionsStore, 'put'>,
  accountId: string,
  method: string,
  nowMs: number,
): Promise<{ sessionId: string; expiresAtMs: number }> {
  const sessionId = newSecret();
  const expiresAtMs = nowMs + SESSION_TTL_MS;
  await sessions.put({ kind: 'session', hash: secretHash(sessionId), accountId, method, createdAtMs: nowMs, expiresAtMs });
  return { sessionId, expiresAtMs };
}

/**
 * The session's CSRF token: derived from the session id (which only the HttpOnly cookie holds), so
 * it needs no storage, and a page that can read it still cannot recover the session id.
 */
export function csrfTokenFor(sessionId: string): string {
  return createHash('sha256').update(`itapi-console-csrf\0${sessionId}`).digest('base64url');
}

export function csrfTokenMatches(sessionId: string, given: string | undefined): boolean {
  if (!given) return false;
  const expected = Buffer.from(csrfTokenFor(sessionId));
  const actual = Buffer.from(given);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
