import { minuteOf } from '../../lambda/limits/sliding-window';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { books, expectBooksBalance, expectErrorBody, leaks, postChat, sleep } from './support';

/**
 * A bounded soak through the local server (issue 7, item 3): many requests, half streaming, 50 at
 * a time, several accounts and keys, random client aborts. Afterwards every account's books
 * balance, every admitted request was settled exactly once, the minute counters match the
 * ledger, and memory has not grown without bound.
 *
 * `npm test` runs 400 requests; `npm run soak` runs 2,000 (ITAPI_SOAK_REQUESTS).
 */

const TOTAL = Number(process.env.ITAPI_SOAK_REQUESTS ?? 400);
const CONCURRENCY = 50;
const PROMPT = 'Soak9Lq prompt: write three words';

jest.setTimeout(Math.max(60_000, TOTAL * 100));

interface Result {
  account: number;
  status: number | 'aborted';
  requestId?: string;
  stream: boolean;
}

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw?.stop();
});

/** A small deterministic PRNG, so a failing run can be replayed with ITAPI_SOAK_SEED. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

it(`keeps the books exact through ${TOTAL} requests, ${CONCURRENCY} at a time, with aborts`, async () => {
  const seed = Number(process.env.ITAPI_SOAK_SEED ?? Date.now() % 1_000_000);
  const random = prng(seed);
  // Plenty, little (402s and lowered max_tokens) and a low request limit (429s).
  const accounts = await Promise.all([
    createAccount(gw, { tier: 'enterprise', rpm: 100_000, tpm: 100_000_000, creditsMicroUsd: 50_000_000 }),
    createAccount(gw, { tier: 'enterprise', rpm: 100_000, tpm: 100_000_000, creditsMicroUsd: 50_000_000 }),
    createAccount(gw, { tier: 'enterprise', rpm: 100_000, tpm: 100_000_000, creditsMicroUsd: 2_000 }),
    createAccount(gw, { tier: 'enterprise', rpm: Math.ceil(TOTAL / 20), tpm: 100_000_000, creditsMicroUsd: 50_000_000 }),
  ]);
  const keys = await Promise.all(
    accounts.map(async (acct) => [acct.key, (await addKey(gw, acct.accountId, { tier: 'enterprise', rpm: acct.record.accountRpm, tpm: acct.record.accountTpm })).key]),
  );

  const one = async (i: number): Promise<Result> => {
    const account = Math.floor(random() * accounts.length);
    const key = keys[account][Math.floor(random() * keys[account].length)];
    const stream = random() < 0.5;
    const abortAfterMs = random() < 0.15 ? Math.floor(random() * 30) : undefined;
    const body = {
      model: random() < 0.5 ? 'gpt-4o-mini' : 'gpt-4o',
      messages: [{ role: 'user', content: `${PROMPT} #${i}` }],
      ...(random() < 0.7 ? { max_tokens: 1 + Math.floor(random() * 60) } : {}),
      ...(stream ? { stream: true, stream_options: { include_usage: random() < 0.5 } } : {}),
    };
    const controller = new AbortController();
    const timer = abortAfterMs === undefined ? undefined : setTimeout(() => controller.abort(), abortAfterMs);
    try {
      const res = await postChat(gw, key, body, { signal: controller.signal });
      const requestId = res.headers.get('x-request-id') ?? undefined;
      const text = await res.text();
      if (res.status === 200 && stream) expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      if (res.status !== 200) {
        if (![402, 429].includes(res.status)) throw new Error(`account ${account}: ${res.status} ${text}`);
        expectErrorBody(JSON.parse(text));
      }
      return { account, status: res.status, requestId, stream };
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
      return { account, status: 'aborted', stream };
    } finally {
      clearTimeout(timer);
    }
  };

  // Warm up, then measure the heap with the gateway's caches filled.
  const warmUpMinute = minuteOf(Date.now());
  await Promise.all(Array.from({ length: 20 }, (_, i) => one(-i)));
  await gw.gateway.background.drain();
  // `npm run soak` runs node with --expose-gc, so the heap is measured after a full collection.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const startMinute = minuteOf(Date.now());

  const results: Result[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < TOTAL) results.push(await one(next++));
    }),
  );
  await gw.gateway.background.drain();
  await sleep(50);
  await gw.gateway.background.drain();
  gc?.();
  const heapAfter = process.memoryUsage().heapUsed;

  const statuses = results.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
  // The mix was exercised: served, aborted, cannot pay and rate limited.
  expect(statuses[200]).toBeGreaterThan(TOTAL / 3);
  expect(statuses.aborted).toBeGreaterThan(0);
  expect(statuses[402]).toBeGreaterThan(0);
  expect(statuses[429]).toBeGreaterThan(0);
  expect(gw.gateway.background.size).toBe(0);

  // Every admitted request (one access-log line each) was settled exactly once.
  const admitted = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.event === 'request' && l.admitted);
  for (const [index, acct] of accounts.entries()) {
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    const admittedIds = admitted.filter((l) => l.account_id === acct.accountId).map((l) => l.request_id);
    expect(new Set(admittedIds).size).toBe(admittedIds.length);
    // An admission write whose answer may have been lost (DynamoDB Local slow or failing under a
    // full suite's load) and whose request then ended refused is released: where its hold never
    // landed, a zero ledger item is written alone, so that a hold landing late is an orphan the
    // sweeper gives back (lambda/money/README.md). Such an item belongs to no admitted request.
    const guard = (r: (typeof b.requests)[number]) => !admittedIds.includes(r.id) && r.amountMicroUsd === 0 && r.status === 'failed' && r.errorCode === 'admission_unanswered';
    const ledgerIds = b.requests.filter((r) => !guard(r)).map((r) => r.id);
    expect(new Set(ledgerIds).size).toBe(ledgerIds.length);
    // Anything else in the ledger and not admitted (or admitted and not in the ledger) fails with its item and what the gateway logged about it.
    const extra = b.requests.filter((r) => ledgerIds.includes(r.id) && !admittedIds.includes(r.id));
    const missing = admittedIds.filter((id) => !ledgerIds.includes(id));
    const told = [...extra.map((r) => r.id), ...missing].flatMap((id) => gw.logs.filter((l) => l.includes(id)));
    expect({ extra, missing, told }).toEqual({ extra: [], missing: [], told: [] });
    expect([...ledgerIds].sort()).toEqual([...admittedIds].sort());
    // Every answer the client saw served is in the ledger; nothing refused is.
    for (const r of results.filter((r) => r.account === index && r.requestId)) {
      expect(ledgerIds.includes(r.requestId!)).toBe(r.status === 200);
    }

    // The minute counters agree with the ledger (only decidable when the soak stayed within
    // one minute, or the next one: a minute that is over is immutable). A ledger item carries the
    // request's start, the counters its admission's minute: a warm-up request started before a
    // minute's turn and admitted after it counts in the soak's first minute, so when the warm-up
    // crossed into it the counters cannot be told from the ledger alone.
    const account = (await gw.gateway.stores.accounts.get(acct.accountId))!;
    const soakItems = b.requests.filter((r) => minuteOf(r.atMs) >= startMinute);
    if (warmUpMinute !== startMinute) continue;
    // A released admission counted in the minute only if its hold had landed: between the two.
    const guards = soakItems.filter(guard).length;
    if (guards) {
      if (account.counts.window > startMinute + 1) continue;
      const counted = account.counts.window === startMinute ? account.counts.requests : account.counts.requests + account.counts.prevRequests;
      expect(counted).toBeGreaterThanOrEqual(soakItems.length - guards);
      expect(counted).toBeLessThanOrEqual(soakItems.length);
    } else if (account.counts.window === startMinute) {
      expect(account.counts.requests).toBe(soakItems.length);
      expect(account.counts.tokens).toBe(soakItems.reduce((s, r) => s + (r.promptTokens ?? 0) + (r.completionTokens ?? 0), 0));
    } else if (account.counts.window === startMinute + 1) {
      expect(account.counts.requests + account.counts.prevRequests).toBe(soakItems.length);
    }
  }

  // Memory: bounded, not growing with the number of requests (a loose factor, no GC forced).
  if (gc) expect(heapAfter).toBeLessThan(heapBefore * 1.5 + 32 * 1024 * 1024);
  else expect(heapAfter).toBeLessThan(heapBefore * 3 + 64 * 1024 * 1024);
  expect(leaks(gw.logs, [...keys.flat(), 'Soak9Lq'])).toEqual([]);
  if (process.env.ITAPI_SOAK_REQUESTS) console.log(JSON.stringify({ seed, statuses, heapBefore, heapAfter }));
});

/**
 * Found by the soak: when the balance cannot pay the model's maximum and the client named no
 * max_tokens, each failed write lowered the hold and used one of the three attempts meant for
 * stale beliefs; under contention the balance moved between attempts and the client got 503
 * 'The account is too busy' instead of a lowered answer or a 402.
 */
it('answers a nearly empty account under contention with 200 or 402, never 503', async () => {
  for (let round = 0; round < 5; round++) {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 100_000, tpm: 100_000_000, creditsMicroUsd: 1_500 });
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => postChat(gw, acct.key, { model: 'gpt-4o', messages: [{ role: 'user', content: 'tell me a story' }] })),
    );
    const statuses = await Promise.all(responses.map(async (r) => (await r.text(), r.status)));
    for (const status of statuses) expect([200, 402]).toContain(status);
    expectBooksBalance(await books(gw, acct.accountId));
  }
});
