import { type Dynamo } from '../../lambda/store/dynamo';
import { csrfTokenFor, csrfTokenMatches, createSignInLink, redeemSignInLink, secretHash, SESSION_TTL_MS, SIGN_IN_LINK_TTL_MS, startSession } from '../../lambda/auth/sign-in';
import { SessionsStore } from '../../lambda/store/sessions';
import type { TableNames } from '../../lambda/store/tables';
import { createTestTables, deleteTestTables } from '../support/dynamo';

/** Sign-in links and sessions against DynamoDB Local, with the clock in the test's hands. */

let client: Dynamo;
let tables: TableNames;
let sessions: SessionsStore;

beforeAll(async () => {
  ({ client, tables } = await createTestTables());
  sessions = new SessionsStore(client, tables.sessions);
});
afterAll(async () => {
  await deleteTestTables(client, tables);
});

const T0 = Date.UTC(2025, 0, 15, 12, 0, 0);
const tokenOf = (url: string) => new URL(url).hash.slice(1);

describe('sign-in links', () => {
  it('work until 15 minutes have passed, not a millisecond after', async () => {
    const link = await createSignInLink(sessions, 'acct-a', 'https://gw.example/prod/console', T0);
    expect(link.url).toMatch(/^https:\/\/gw\.example\/prod\/console\/sign-in#[A-Za-z0-9_-]{43}$/);
    expect(link.expiresAtMs).toBe(T0 + SIGN_IN_LINK_TTL_MS);
    expect(await redeemSignInLink(sessions, tokenOf(link.url), T0 + SIGN_IN_LINK_TTL_MS)).toBeUndefined();
    const fresh = await createSignInLink(sessions, 'acct-a', 'https://gw.example/console/', T0);
    const grant = await redeemSignInLink(sessions, tokenOf(fresh.url), T0 + SIGN_IN_LINK_TTL_MS - 1);
    expect(grant).toMatchObject({ kind: 'link', accountId: 'acct-a', method: 'link', usedAtMs: T0 + SIGN_IN_LINK_TTL_MS - 1 });
  });

  it('work once, even when used concurrently', async () => {
    const link = await createSignInLink(sessions, 'acct-b', 'https://gw.example/console/', T0);
    const results = await Promise.all(Array.from({ length: 8 }, () => redeemSignInLink(sessions, tokenOf(link.url), T0 + 1000)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await redeemSignInLink(sessions, tokenOf(link.url), T0 + 2000)).toBeUndefined();
  });

  it('carry a TTL so DynamoDB removes them, and only the token’s hash', async () => {
    const link = await createSignInLink(sessions, 'acct-c', 'https://gw.example/console/', T0);
    const token = tokenOf(link.url);
    // The item as stored: TTL attribute in unix seconds, keyed by the hash, the token nowhere.
    const { Item } = await client.call('GetItem', { TableName: tables.sessions, Key: { id: { S: `link#${secretHash(token)}` } } });
    expect(Item.expires_at).toEqual({ N: String(Math.ceil((T0 + SIGN_IN_LINK_TTL_MS) / 1000)) });
    expect(JSON.stringify(Item)).not.toContain(token);
    const grant = await redeemSignInLink(sessions, token, T0);
    expect(grant!.hash).toBe(secretHash(token));
  });

  it('sign in once when the answer to the use is lost and the write is sent again', async () => {
    const link = await createSignInLink(sessions, 'acct-lost', 'https://gw.example/console/', T0);
    let resent = 0;
    client.intercept(async (operation, input, next) => {
      if (operation !== 'UpdateItem' || input.TableName !== tables.sessions || resent > 0) return next();
      resent++;
      await next(); // the link is marked used, the answer lost…
      return next(); // …and the same write sent again
    });
    const grant = await redeemSignInLink(sessions, tokenOf(link.url), T0 + 1000);
    expect(resent).toBe(1);
    expect(grant).toMatchObject({ kind: 'link', accountId: 'acct-lost' });
    // And still once: another use is refused.
    expect(await redeemSignInLink(sessions, tokenOf(link.url), T0 + 2000)).toBeUndefined();
  });
});

describe('sessions', () => {
  it('live 12 hours, then read as ended', async () => {
    const { sessionId, expiresAtMs } = await startSession(sessions, 'acct-d', 'link', T0);
    expect(expiresAtMs).toBe(T0 + SESSION_TTL_MS);
    expect(await sessions.getSession(secretHash(sessionId), T0 + SESSION_TTL_MS - 1)).toMatchObject({ accountId: 'acct-d', kind: 'session' });
    expect(await sessions.getSession(secretHash(sessionId), T0 + SESSION_TTL_MS)).toBeUndefined();
  });

  it('end at sign-out', async () => {
    const { sessionId } = await startSession(sessions, 'acct-e', 'link', T0);
    await sessions.deleteSession(secretHash(sessionId));
    expect(await sessions.getSession(secretHash(sessionId), T0)).toBeUndefined();
  });

  it('a link’s hash never reads as a session, nor a session’s as a link', async () => {
    const link = await createSignInLink(sessions, 'acct-f', 'https://gw.example/console/', T0);
    expect(await sessions.getSession(secretHash(tokenOf(link.url)), T0)).toBeUndefined();
    const { sessionId } = await startSession(sessions, 'acct-f', 'link', T0);
    expect(await redeemSignInLink(sessions, sessionId, T0)).toBeUndefined();
    expect(await sessions.getSession(secretHash(sessionId), T0)).toBeDefined();
  });

  it('revokeAccount ends every session and voids every link of one account, and no other', async () => {
    const a1 = await startSession(sessions, 'acct-g', 'link', T0);
    const a2 = await startSession(sessions, 'acct-g', 'link', T0);
    const link = await createSignInLink(sessions, 'acct-g', 'https://gw.example/console/', T0);
    const other = await startSession(sessions, 'acct-h', 'link', T0);
    expect(await sessions.revokeAccount('acct-g')).toBe(3);
    expect(await sessions.getSession(secretHash(a1.sessionId), T0)).toBeUndefined();
    expect(await sessions.getSession(secretHash(a2.sessionId), T0)).toBeUndefined();
    expect(await redeemSignInLink(sessions, tokenOf(link.url), T0)).toBeUndefined();
    expect(await sessions.getSession(secretHash(other.sessionId), T0)).toBeDefined();
  });
});

describe('CSRF tokens', () => {
  it('follow from the session id, differ between sessions, and compare in constant time', () => {
    const a = csrfTokenFor('A'.repeat(43));
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(csrfTokenFor('A'.repeat(43))).toBe(a);
    expect(csrfTokenFor('B'.repeat(43))).not.toBe(a);
    expect(a).not.toBe(secretHash('A'.repeat(43)));
    expect(csrfTokenMatches('A'.repeat(43), a)).toBe(true);
    expect(csrfTokenMatches('A'.repeat(43), `${a}x`)).toBe(false);
    expect(csrfTokenMatches('A'.repeat(43), undefined)).toBe(false);
    expect(csrfTokenMatches('A'.repeat(43), '')).toBe(false);
  });
});
