import { warmTokenizer } from '../../lambda/money/tokens';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { cancellationMetrics, freshTables, recordingUpstream, speculationCatalog, uniqueTag, until, type RecordingUpstream } from '../support/speculation';
import { books, expectBooksBalance, expectErrorBody, parseSse, postChat, sleep } from '../reliability/support';

/**
 * A key whose cache entry's trust ran out (issue 22: a client whose requests come more than 5 s
 * apart) starts its request while the key is read again (`authenticateAhead`): the speculative
 * upstream call may go out, but nothing is answered and nothing written until the read has
 * answered. A key disabled meanwhile gets its 401, its call cut and counted (`key_refused`), and
 * nothing charged; a key whose terms changed is served on the terms read (`key_changed`). Key reads
 * are slowed by an interceptor on the gateway's own DynamoDB client, so the order is structural.
 */

const AUTH_TTL_MS = 300;
const KEY_READ_DELAY_MS = 600;
const CATALOG = speculationCatalog();

interface KeyRead {
  startedAtMs: number;
  endedAtMs?: number;
}

let upstream: RecordingUpstream;
let gw: TestGateway;
const tables = freshTables('ka');
const keyReads: KeyRead[] = [];
const cancellations: string[] = [];
/** While set, each read of the keys table waits this long before it is sent. */
let keyReadDelayMs = 0;

beforeAll(async () => {
  await warmTokenizer();
  upstream = await recordingUpstream();
  CATALOG.models.m.routes[0].base_url = upstream.url;
  gw = await startTestGateway({ catalog: catalogOf(CATALOG), seedDemo: false, metrics: cancellationMetrics(cancellations), tables, authTtlMs: AUTH_TTL_MS });
  gw.dynamo.intercept(async (operation, input, next) => {
    if (operation !== 'GetItem' || (input as { TableName?: string }).TableName !== tables.keys || !keyReadDelayMs) return next();
    const read: KeyRead = { startedAtMs: Date.now() };
    keyReads.push(read);
    await sleep(keyReadDelayMs);
    try {
      return await next();
    } finally {
      read.endedAtMs = Date.now();
    }
  });
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
});

beforeEach(() => {
  keyReadDelayMs = 0;
  upstream.answerAfterMs = 0;
  cancellations.length = 0;
  keyReads.length = 0;
});

const ask = (key: string, tag: string, extra: object = {}, init: RequestInit = {}) =>
  postChat(gw, key, { model: 'm', messages: [{ role: 'user', content: tag }], max_tokens: 100, ...extra }, init);
const arrivalsOf = (tag: string) => upstream.arrivalsOf(tag);

/**
 * The account and key as an instance in use sees them: one admitted request (the key read, the
 * account's view brought up to date), then the key's trust left to run out.
 */
async function inUseThenIdle(): Promise<TestAccount> {
  const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
  const res = await ask(acct.key, uniqueTag());
  expect(res.status).toBe(200);
  await res.json();
  await gw.gateway.background.drain();
  await sleep(AUTH_TTL_MS + 100);
  keyReadDelayMs = KEY_READ_DELAY_MS;
  return acct;
}

/** Changes the key item as an admin on another instance would (the keys table holds what the key may do). */
function setKeyField(acct: TestAccount, field: 'models' | 'rpm', value: { L: Array<{ S: string }> } | { N: string }): Promise<unknown> {
  return gw.dynamo.call('UpdateItem', {
    TableName: tables.keys,
    Key: { key_hash: { S: acct.record.keyHash } },
    UpdateExpression: `SET ${field} = :v`,
    ExpressionAttributeValues: { ':v': value },
  });
}

describe('a key past its trust, still active', () => {
  it('is sent upstream before its read answers, and nothing reaches the client before the read has (stream)', async () => {
    const acct = await inUseThenIdle();
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { stream: true });
    const headersAtMs = Date.now();
    expect(res.status).toBe(200);
    const events = parseSse(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    const [read, ...moreReads] = keyReads;
    expect(moreReads).toHaveLength(0);
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    expect(arrival.arrivedAtMs).toBeLessThan(read.endedAtMs!);
    expect(headersAtMs).toBeGreaterThanOrEqual(read.endedAtMs!);
    expect(cancellations).toEqual([]);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(2);
  });

  it('is read first, as before, once its last read is older than a minute', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    const res = await ask(acct.key, uniqueTag());
    await res.json();
    // The entry as a minute and more later: its trust and the minute both gone.
    const auth = gw.gateway.auth as unknown as { cache: Map<string, { sentAtMs: number; expiresMs: number }> };
    const entry = auth.cache.get(acct.record.keyHash)!;
    entry.sentAtMs -= 61_000;
    entry.expiresMs -= 61_000;
    keyReadDelayMs = KEY_READ_DELAY_MS;
    const tag = uniqueTag();
    const again = await ask(acct.key, tag);
    expect(again.status).toBe(200);
    await again.json();
    expect(arrivalsOf(tag)[0].arrivedAtMs).toBeGreaterThanOrEqual(keyReads[0].endedAtMs!);
  });
});

describe('a key disabled since its last read', () => {
  it('gets its 401 once read, its speculative call cut and counted, and nothing charged', async () => {
    const acct = await inUseThenIdle();
    const before = await books(gw, acct.accountId);
    await gw.gateway.stores.keys.update(acct.record.keyId, { status: 'disabled' });
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { stream: true });
    expect(res.status).toBe(401);
    const body = await res.json();
    expectErrorBody(body, 'authentication_error', 'invalid_api_key');
    expect(body.error.message).toMatch(/disabled/);
    // A refused key's 401 tells nothing of its account.
    expect(res.headers.get('x-ratelimit-limit-requests')).toBeNull();
    expect(res.headers.get('x-ratelimit-remaining-tokens')).toBeNull();
    const [arrival] = arrivalsOf(tag);
    expect(arrival.arrivedAtMs).toBeLessThan(keyReads[0].endedAtMs!);
    await until(() => arrival.closedUnanswered, 'the speculative call to be cut');
    expect(cancellations).toEqual(['key_refused']);
    expect(gw.logs.filter((l) => l.includes('"speculation_cancelled"') && l.includes('"reason":"key_refused"'))).toHaveLength(1);

    // Refused from the cache from now on: no call, no read.
    const again = await ask(acct.key, tag);
    expect(again.status).toBe(401);
    await again.json();
    expect(arrivalsOf(tag)).toHaveLength(1);
    const after = await books(gw, acct.accountId);
    expectBooksBalance(after);
    expect(after.requests).toHaveLength(before.requests.length);
    expect(after.balance).toBe(before.balance);
  });

  it('gets its 401, not the 400 its body earns, and no call', async () => {
    const acct = await inUseThenIdle();
    await gw.gateway.stores.keys.update(acct.record.keyId, { status: 'disabled' });
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { temperature: 5 });
    expect(res.status).toBe(401);
    expectErrorBody(await res.json(), 'authentication_error', 'invalid_api_key');
    expect(arrivalsOf(tag)).toHaveLength(0);
    expect(cancellations).toEqual([]);
  });
});

describe('while the key is read again', () => {
  it('a client that leaves gets no admission written: nothing held, nothing on the ledger, the call cut and counted', async () => {
    const acct = await inUseThenIdle();
    const before = await books(gw, acct.accountId);
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const abort = new AbortController();
    const pending = ask(acct.key, tag, {}, { signal: abort.signal }).catch((err: Error) => err);
    await until(() => arrivalsOf(tag).length === 1, 'the speculative call');
    abort.abort();
    expect(await pending).toMatchObject({ name: 'AbortError' });
    await until(() => cancellations.length === 1, 'the cancellation');
    expect(cancellations).toEqual(['client_closed']);
    await until(() => keyReads[0]?.endedAtMs !== undefined, 'the key read');
    const after = await books(gw, acct.accountId);
    expectBooksBalance(after);
    expect(after.requests).toHaveLength(before.requests.length);
    expect(after.balance).toBe(before.balance);
  });

  it('the request waiting for it is counted in flight: the next one on the same view speculates only if the balance pays both', async () => {
    // After inUseThenIdle's request (6,000 µUSD), 455,000: 4.5 holds of about 101,000. The first
    // request speculates (≥ 4 holds); the second, with the first counted, sees 3.5 and waits.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 461_000 });
    const first = await ask(acct.key, uniqueTag());
    expect(first.status).toBe(200);
    await first.json();
    await gw.gateway.background.drain();
    await sleep(AUTH_TTL_MS + 100);
    keyReadDelayMs = KEY_READ_DELAY_MS;
    const [a, b] = [uniqueTag(), uniqueTag()];
    const answers = await Promise.all([ask(acct.key, a), ask(acct.key, b)]);
    for (const res of answers) {
      expect(res.status).toBe(200);
      await res.json();
    }
    const readEnd = Math.max(...keyReads.map((r) => r.endedAtMs!));
    const times = [arrivalsOf(a)[0].arrivedAtMs, arrivalsOf(b)[0].arrivedAtMs].sort((x, y) => x - y);
    expect(times[0]).toBeLessThan(readEnd);
    expect(times[1]).toBeGreaterThanOrEqual(readEnd);
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });
});

describe('a key whose terms changed since its last read', () => {
  it('is refused on the terms read (a model taken off its list): 403, the call cut and counted, nothing charged', async () => {
    const acct = await inUseThenIdle();
    const before = await books(gw, acct.accountId);
    await setKeyField(acct, 'models', { L: [{ S: 'another-model' }] });
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag);
    expect(res.status).toBe(403);
    expectErrorBody(await res.json(), 'permission_error', 'model_not_allowed');
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    await until(() => arrival.closedUnanswered, 'the speculative call to be cut');
    expect(cancellations).toEqual(['key_changed']);
    const after = await books(gw, acct.accountId);
    expectBooksBalance(after);
    expect(after.requests).toHaveLength(before.requests.length);
    expect(after.balance).toBe(before.balance);
  });

  it('is served on the terms read when they still allow it (a key capped since): admitted once under its cap, the cut call counted', async () => {
    const acct = await inUseThenIdle();
    await setKeyField(acct, 'rpm', { N: '500' });
    const tag = uniqueTag();
    const res = await ask(acct.key, tag);
    expect(res.status).toBe(200);
    // The key's cap, lower than the account's 1,000: admitted as the key is now.
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('500');
    expect((await res.json()).choices[0].message.content).toBe('hello there');
    expect(cancellations).toEqual(['key_changed']);
    // The call made on the old terms and the one made on the new: one answered to the client, one charged.
    expect(arrivalsOf(tag)).toHaveLength(2);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(2);
  });
});

describe('the other completion endpoints', () => {
  it('Messages: a key disabled since its last read gets Anthropic\'s 401 once read, its call cut and counted', async () => {
    const acct = await inUseThenIdle();
    await gw.gateway.stores.keys.update(acct.record.keyId, { status: 'disabled' });
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const res = await fetch(`${gw.baseUrl}/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 100, messages: [{ role: 'user', content: tag }] }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error', message: expect.stringMatching(/disabled/) } });
    expect(keyReads).toHaveLength(1);
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    expect(arrival.arrivedAtMs).toBeLessThan(keyReads[0].endedAtMs!);
    await until(() => arrival.closedUnanswered, 'the speculative call to be cut');
    expect(cancellations).toEqual(['key_refused']);
  });

  it('Responses: a key still active is served, the call made before its read answered', async () => {
    const acct = await inUseThenIdle();
    const tag = uniqueTag();
    const res = await fetch(`${gw.baseUrl}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_output_tokens: 100, input: tag }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'completed' });
    expect(arrivalsOf(tag)[0].arrivedAtMs).toBeLessThan(keyReads[0].endedAtMs!);
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });
});
