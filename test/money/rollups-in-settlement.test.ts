import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { moneyRuntime } from '../../lambda/money';
import { CreditAdmission } from '../../lambda/money/admission';
import type { Outcome } from '../../lambda/money/types';
import { abandonedSettlement, requestSettlement } from '../../lambda/money/settlement';
import { TierCache } from '../../lambda/money/tier-cache';
import { warmTokenizer } from '../../lambda/money/tokens';
import { createStores } from '../../lambda/runtime';
import { createDynamoClient } from '../../lambda/store/client';
import { DynamoError } from '../../lambda/store/dynamo';
import type { HoldRecord } from '../../lambda/store/holds';
import type { KeyRecord } from '../../lambda/store/keys';
import type { LedgerEntry } from '../../lambda/store/usage';
import { fundedAccount } from '../support/accounts';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { memoryLogger } from '../support/gateway';
import { chatAdmission, completed } from '../support/money';
import { booksOf, expectBooksBalance } from '../reliability/support';

/**
 * Local mode (`rollupsInline`): the usage roll-up rides in the settlement's own transaction
 * (issue 22: two DynamoDB calls a request, not three). Each ledger item is in its roll-up exactly
 * once, whoever writes it (a request, the sweeper, a late settlement, a release), whatever the
 * network does to the answers; the catch-up at start finds nothing left to add.
 */

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const mini = catalog.get('gpt-4o-mini')!;
const big = catalog.get('gpt-4o')!;
const CREDITS = 1_000_000_000;

beforeAll(() => warmTokenizer());

const request = (max = 40) => parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: max });
const lostAnswer = () => new DynamoError('NetworkingError', 'socket hang up', undefined, 1, {}, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));

async function setup(o: { now?: () => number; maxRequestMs?: number } = {}) {
  const { tables } = await createTestTables();
  // A client of its own: its calls are counted, and answers can be lost on it.
  const client = createDynamoClient(testDynamoEndpoint());
  const transactions: Array<{ items: Array<Record<string, { TableName: string }>>; ok: boolean }> = [];
  let lost = 0;
  /** Answers to lose, in order, of settlement transactions (of groups only, when `groupsOnly`): before or after the write landed. */
  let toLose: { whens: Array<'before' | 'after'>; groupsOnly: boolean } = { whens: [], groupsOnly: false };
  // An outage (`outageFor`): every call refused before it is sent, and a call that lands while it
  // begins has its answer lost, as when DynamoDB goes away mid-call.
  let outageUntil = 0;
  const down = () => Date.now() < outageUntil;
  client.intercept(async (operation, input, next) => {
    if (down()) throw new DynamoError('NetworkingError', 'connect ECONNREFUSED', undefined, 1, {}, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    if (outageUntil) {
      const out = await next();
      if (down()) throw lostAnswer();
      return out;
    }
    if (operation !== 'TransactWriteItems') return next();
    const items = input.TransactItems as Array<Record<string, { TableName: string }>>;
    const puts = items.filter((i) => i.Put?.TableName === tables.usage).length;
    if (puts > (toLose.groupsOnly ? 1 : 0) && toLose.whens.length) {
      const when = toLose.whens.shift();
      lost++;
      if (when === 'after') await next();
      throw lostAnswer();
    }
    try {
      const out = await next();
      transactions.push({ items, ok: true });
      return out;
    } catch (err) {
      transactions.push({ items, ok: false });
      throw err;
    }
  });
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const { accountId, record } = await fundedAccount(stores, { tier: 'enterprise', creditsMicroUsd: CREDITS, rpm: 1_000_000, tpm: 1_000_000_000, createdAtMs: 0, storeKey: false });
  const key = (n: number): KeyRecord => ({ ...record, keyHash: `hash${n}_${accountId}`, keyId: `key${n}_${accountId}`, name: `k${n}` });
  const now = o.now ?? Date.now;
  // The production wiring of local mode (as lambda/runtime.ts builds it for the local server).
  const log = memoryLogger();
  const money = moneyRuntime({ stores, tables, log, rollupsInline: true, groupCommit: true, sweepGraceMs: 0, now });
  const admission = new CreditAdmission({
    store: stores.accounts,
    holds: stores.holds,
    tiers: new TierCache(stores.tiers, 60_000, now),
    settlements: money.settlements,
    keysTable: tables.keys,
    maxRequestMs: o.maxRequestMs ?? 900_000,
    now,
  });
  /** The roll-ups of the day of `atMs`, per key and model, as the ledger says they must be and as they are. */
  const compare = async (atMs: number) => {
    const ledger = (await stores.usage.all(accountId)).filter((e) => e.kind === 'request');
    const expected = new Map<string, number[]>();
    for (const e of ledger) {
      const k = `${e.keyId}|${e.model}`;
      const v = expected.get(k) ?? [0, 0, 0, 0, 0, 0];
      const failed = e.status === 'failed' || e.status === 'abandoned' ? 1 : 0;
      expected.set(k, [v[0] + 1, v[1] + failed, v[2] + (e.promptTokens ?? 0), v[3] + (e.completionTokens ?? 0), v[4] - e.amountMicroUsd, v[5] + (e.unchargedMicroUsd ?? 0)]);
    }
    const day = new Date(atMs).toISOString().slice(0, 10);
    const actual = (await stores.rollups.range(accountId, day, day)).map((r) => [`${r.keyId}|${r.model}`, [r.requests, r.failedRequests, r.promptTokens, r.completionTokens, r.costMicroUsd, r.unchargedMicroUsd]] as const);
    return { ledger, expected: [...expected].sort(), actual: actual.sort() };
  };
  /** Whether each of the account's request ledger items carries the roll-up mark. */
  const marks = async () => {
    const page = await client.call('Query', { TableName: tables.usage, KeyConditionExpression: 'account_id = :a', ExpressionAttributeValues: { ':a': { S: accountId } } });
    return (page.Items as Array<Record<string, { S?: string; BOOL?: boolean }>>).filter((i) => i.kind.S === 'request').map((i) => i.rolled_up?.BOOL === true);
  };
  const expectBooks = async () => expectBooksBalance(await booksOf(stores, accountId));
  /** Admits `n` requests (`<prefix><i>-<account>`), `batch` at a time, each on the key and model `of(i)` names. */
  const admitMany = async (n: number, prefix: string, of: (i: number) => { key: number; model: typeof mini }, at: number, batch = 100) => {
    const admitted = [];
    for (let i = 0; i < n; i += batch) {
      admitted.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => admission.admit(chatAdmission(`${prefix}${i + j}-${accountId}`, key(of(i + j).key), of(i + j).model, request(), at))))));
    }
    return admitted;
  };
  return { client, tables, stores, accountId, key, admission, admitMany, money, log, transactions, compare, marks, expectBooks, loseAnswers: (whens: Array<'before' | 'after'>, groupsOnly = false) => (toLose = { whens: [...whens], groupsOnly }), lost: () => lost, outageFor: (ms: number) => (outageUntil = Date.now() + ms) };
}

describe('the roll-up in the settlement’s transaction (local mode)', () => {
  it('300 concurrent settlements over 3 keys and 2 models: the roll-ups in their transactions, equal to the ledger, nothing left to catch up', async () => {
    const f = await setup();
    const at = Date.now();
    const n = 300;
    const admitted = await f.admitMany(n, 'c', (i) => ({ key: i % 3, model: i % 4 === 0 ? big : mini }), at, 50);
    f.transactions.length = 0;
    await Promise.all(
      admitted.map((a, i) =>
        a.settle(
          i % 9 === 0
            ? { status: 'failed', httpStatus: 503, completionText: '', latencyMs: 1, stream: false }
            : completed({ prompt_tokens: 8 + (i % 5), completion_tokens: 1 + (i % 30), total_tokens: 9 + (i % 5) + (i % 30) }),
        ),
      ),
    );
    const landed = f.transactions.filter((t) => t.ok);
    // Every settlement transaction carries the roll-ups of its ledger items (one per roll-up item
    // touched, settlements grouped by account in local mode); no transaction of roll-ups alone.
    const puts = (t: (typeof landed)[number]) => t.items.filter((i) => i.Put?.TableName === f.tables.usage);
    expect(landed.reduce((sum, t) => sum + puts(t).length, 0)).toBe(n);
    for (const t of landed) {
      expect(puts(t).length).toBeGreaterThan(0);
      const rolled = t.items.filter((i) => i.Update?.TableName === f.tables.rollups);
      expect(rolled.length).toBeGreaterThan(0);
      expect(rolled.length).toBeLessThanOrEqual(6);
    }
    const { ledger, expected, actual } = await f.compare(at);
    expect(ledger).toHaveLength(n);
    expect(actual).toEqual(expected);
    expect(actual.length).toBe(6);
    expect(actual.reduce((s, [, v]) => s + v[0], 0)).toBe(n);
    expect((await f.marks()).every(Boolean)).toBe(true);
    expect(await f.stores.rollups.catchUp()).toBe(0);
    expect(await f.compare(at)).toEqual({ ledger, expected, actual });
    await f.expectBooks();
  }, 60_000);

  it.each(['after', 'before'] as const)('a settlement whose answer is lost (%s it landed) is rolled up once', async (when) => {
    const f = await setup();
    const at = Date.now();
    const ok = completed({ prompt_tokens: 8, completion_tokens: 20, total_tokens: 28 });
    const a = await f.admission.admit(chatAdmission(`lost-${when}-${f.accountId}`, f.key(1), mini, request(), at));
    const b = await f.admission.admit(chatAdmission(`twice-${when}-${f.accountId}`, f.key(1), mini, request(), at));
    const holdB = (await f.stores.holds.ofAccount(f.accountId)).find((h) => h.requestId.startsWith('twice'))!;
    // Two answers lost: the settlement's first write and the retry's (both landed, or neither).
    f.loseAnswers([when, when]);
    await a.settle(ok);
    await b.settle(ok);
    // The same settlement sent again after it landed (a queue's redelivery): nothing more.
    expect(await f.money.replays.apply(requestSettlement(holdB, mini, ok))).toMatchObject({ settled: false });
    const { ledger, expected, actual } = await f.compare(at);
    expect(ledger).toHaveLength(2);
    expect(actual).toEqual(expected);
    expect(actual[0][1][0]).toBe(2);
    expect(await f.stores.rollups.catchUp()).toBe(0);
    await f.expectBooks();
  });

  it('the sweeper’s abandoned settlement, the request’s late one after it, and a release are each rolled up once, in their own transaction', async () => {
    let now = Date.now();
    const f = await setup({ now: () => now, maxRequestMs: 1_000 });
    const at = now;
    const swept = await f.admission.admit(chatAdmission(`swept-${f.accountId}`, f.key(0), mini, request(), at));
    now += 1_001;
    f.transactions.length = 0;
    expect(await f.money.sweeper.sweep()).toMatchObject({ abandoned: 1 });
    // The request's own settlement, after the sweep: its difference as a `#late` item.
    await swept.settle(completed({ prompt_tokens: 8, completion_tokens: 30, total_tokens: 38 }));
    // A release of an admission whose answer never came, while no hold is there: the ledger item alone.
    const ghost = ghostHold(f.accountId, f.key(2).keyId, at);
    const release = { ...requestSettlement(ghost, { price: { ...mini.price, inputPerToken: 0, outputPerToken: 0 } } as typeof mini, { status: 'failed', httpStatus: 503, errorCode: 'admission_unanswered', completionText: '', latencyMs: 0, stream: false }), release: true };
    await f.money.settlements.apply(release);
    const { ledger, expected, actual } = await f.compare(at);
    expect(ledger.map((e: LedgerEntry) => e.status).sort()).toEqual(['abandoned', 'failed', 'late_settlement']);
    expect(actual).toEqual(expected);
    // Every ledger item written in a transaction with its roll-up: none left to a later write.
    expect((await f.marks()).every(Boolean)).toBe(true);
    const writes = f.transactions.filter((t) => t.ok && t.items.some((i) => i.Put?.TableName === f.tables.usage));
    expect(writes).toHaveLength(3);
    for (const t of writes) expect(t.items.some((i) => i.Update?.TableName === f.tables.rollups)).toBe(true);
    expect(await f.stores.rollups.catchUp()).toBe(0);
    await f.expectBooks();
    // Sent again (a queue's redelivery): nothing moves.
    await f.money.settlements.apply(release);
    expect((await f.compare(at)).actual).toEqual(actual);
  });
});

describe('settlements of one account grouped in one transaction (local mode, group commit)', () => {
  it('1,000 concurrent settlements with answers lost before and after landing: each settled once, fewer transactions, the books and the roll-ups balance', async () => {
    const f = await setup();
    const at = Date.now();
    const n = 1_000;
    const outcomeOf = (i: number): Outcome =>
      i % 13 === 0
        ? { status: 'failed', httpStatus: 503, completionText: '', latencyMs: 1, stream: false }
        : completed({ prompt_tokens: 5 + (i % 7), completion_tokens: 1 + (i % 37), total_tokens: 6 + (i % 7) + (i % 37) });
    const admitted = await f.admitMany(n, 'g', (i) => ({ key: i % 2, model: i % 200 >= 100 ? mini : big }), at);
    // What each must be charged, exactly once: its own settlement's cost (failed calls nothing).
    const holds = new Map((await f.stores.holds.ofAccount(f.accountId)).map((h) => [h.requestId, h]));
    expect(holds.size).toBe(n);
    const expectedCost = new Map(admitted.map((_, i) => [`g${i}-${f.accountId}`, requestSettlement(holds.get(`g${i}-${f.accountId}`)!, i % 200 >= 100 ? mini : big, outcomeOf(i)).costMicroUsd]));
    const before = (await f.stores.accounts.get(f.accountId))!;
    f.transactions.length = 0;
    // Twelve groups' answers lost, alternately after they landed (the caller finds the holds gone:
    // nothing more) and before (each is then applied on its own).
    f.loseAnswers(Array.from({ length: 12 }, (_, i) => (i % 2 ? 'before' : 'after')), true);
    await Promise.all(admitted.map((a, i) => a.settle(outcomeOf(i))));
    expect(f.lost()).toBe(12);

    const b = await booksOf(f.stores, f.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(n);
    for (const r of b.requests) expect(r.amountMicroUsd + expectedCost.get(r.id)!).toBe(0);
    expect(b.balance).toBe(before.balanceMicroUsd + before.heldMicroUsd - [...expectedCost.values()].reduce((x, y) => x + y, 0));
    // Grouped: far fewer settlement transactions landed than settlements, groups of several among them.
    const landed = f.transactions.filter((t) => t.ok && t.items.some((i) => i.Put?.TableName === f.tables.usage));
    const sizes = landed.map((t) => t.items.filter((i) => i.Put?.TableName === f.tables.usage).length);
    expect(sizes.reduce((x, y) => x + y, 0)).toBeLessThanOrEqual(n);
    expect(landed.length).toBeLessThan(n / 2);
    expect(Math.max(...sizes)).toBeGreaterThan(5);
    // The minute's tokens: admission's estimates corrected to the tokens used, summed in the groups.
    const used = admitted.reduce((sum, _, i) => {
      const o = outcomeOf(i);
      return sum + (o.status === 'failed' ? 0 : o.usage!.total_tokens);
    }, 0);
    const account = (await f.stores.accounts.get(f.accountId))!;
    const oneMinute = [...holds.values()].every((h) => h.window === before.counts.window) && account.counts.window === before.counts.window;
    if (oneMinute) expect(account.counts.tokens).toBe(before.counts.tokens - [...holds.values()].reduce((s, h) => s + h.rateTokens, 0) + used);
    const { expected, actual } = await f.compare(at);
    expect(actual).toEqual(expected);
    expect((await f.marks()).every(Boolean)).toBe(true);
    expect(await f.stores.rollups.catchUp()).toBe(0);
  }, 180_000);

  it('400 settlements of one account through a DynamoDB outage (calls refused, answers lost as it begins): each settled once, nothing queued or lost, the books balance', async () => {
    const f = await setup();
    const at = Date.now();
    const n = 400;
    const admitted = await f.admitMany(n, 'o', (i) => ({ key: i % 2, model: mini }), at);
    const holds = new Map((await f.stores.holds.ofAccount(f.accountId)).map((h) => [h.requestId, h]));
    const outcomeOf = (i: number) => completed({ prompt_tokens: 5, completion_tokens: 1 + (i % 37), total_tokens: 6 + (i % 37) });
    const expectedCost = new Map(admitted.map((_, i) => [`o${i}-${f.accountId}`, requestSettlement(holds.get(`o${i}-${f.accountId}`)!, mini, outcomeOf(i)).costMicroUsd]));
    // Settlements spread over 2 s; the outage from 0.5 s to 2.5 s: some land before, many wait in
    // their account's queue or retry through it, the rest come after.
    const outage = new Promise<void>((resolve) =>
      setTimeout(() => {
        f.outageFor(2_000);
        resolve();
      }, 500),
    );
    await Promise.all([outage, ...admitted.map(async (a, i) => {
      await new Promise((resolve) => setTimeout(resolve, (i * 2_000) / n));
      await a.settle(outcomeOf(i));
    })]);
    const b = await booksOf(f.stores, f.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(n);
    for (const r of b.requests) expect(r.amountMicroUsd + expectedCost.get(r.id)!).toBe(0);
    expect(await f.stores.holds.ofAccount(f.accountId)).toEqual([]);
    expect(f.log.lines.filter((l) => /settlement_(queued|not_written)/.test(l))).toEqual([]);
    const { expected, actual } = await f.compare(at);
    expect(actual).toEqual(expected);
  }, 120_000);

  it('a group with a hold the sweeper settled first lands nothing, and each is then applied on its own (the swept one late, once)', async () => {
    let now = Date.now();
    const f = await setup({ now: () => now, maxRequestMs: 1_000 });
    const at = now;
    const admitted = [];
    for (let i = 0; i < 8; i++) admitted.push(await f.admission.admit(chatAdmission(`s${i}-${f.accountId}`, f.key(0), mini, request(), at)));
    const [swept] = (await f.stores.holds.ofAccount(f.accountId)).filter((h) => h.requestId === `s5-${f.accountId}`);
    expect(await f.money.replays.apply(abandonedSettlement(swept, f.tables.keys))).toMatchObject({ settled: true });
    f.transactions.length = 0;
    now += 10;
    // The first goes alone; the other seven wait for it and go together, s5 among them.
    await Promise.all(admitted.map((a) => a.settle(completed({ prompt_tokens: 8, completion_tokens: 12, total_tokens: 20 }))));
    const cancelled = f.transactions.filter((t) => !t.ok && t.items.filter((i) => i.Put?.TableName === f.tables.usage).length > 1);
    expect(cancelled.length).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(cancelled)).toContain(`s5-${f.accountId}`);
    const b = await booksOf(f.stores, f.accountId);
    expectBooksBalance(b);
    expect(b.requests.map((r) => r.status).sort()).toEqual(['abandoned', 'completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'late_settlement']);
    const { expected, actual } = await f.compare(at);
    expect(actual).toEqual(expected);
    expect(await f.stores.rollups.catchUp()).toBe(0);
  });
});

/** The hold an admission would have taken, for a request whose admission answer never came (none is in the table). */
function ghostHold(accountId: string, keyId: string, at: number): HoldRecord {
  return { requestId: `ghost-${accountId}`, accountId, keyId, model: mini.id, holdMicroUsd: 1000, promptMicroUsd: 10, promptTokens: 8, rateTokens: 48, window: Math.floor(at / 60_000), startedAtMs: at, deadlineMs: at + 1000, stream: false };
}
