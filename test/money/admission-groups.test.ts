import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { moneyRuntime } from '../../lambda/money';
import { CreditAdmission } from '../../lambda/money/admission';
import { computeHold } from '../../lambda/money/hold';
import { TierCache } from '../../lambda/money/tier-cache';
import { warmTokenizer } from '../../lambda/money/tokens';
import type { Admitted } from '../../lambda/money/types';
import type { KeyRecord } from '../../lambda/store/keys';
import { createStores } from '../../lambda/runtime';
import { createDynamoClient } from '../../lambda/store/client';
import { DynamoError } from '../../lambda/store/dynamo';
import { fundedAccount } from '../support/accounts';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { memoryLogger } from '../support/gateway';
import { chatAdmission, completed } from '../support/money';
import { booksOf, expectBooksBalance, sleep } from '../reliability/support';

/**
 * Group commit of admissions (local mode, issue 22): the admissions of an account that come
 * while one of its admission writes is in flight share the next transaction. The limits and the
 * money stay exact: a group lands only where each of its requests would have been admitted alone,
 * and a group refused or unanswered leaves each request to its own write.
 */

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const mini = catalog.get('gpt-4o-mini')!;
const request = parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 40 });
/** Mid-minute on a fixed clock: the previous minute is empty, so the limits are the whole minute's. */
const NOW = Date.UTC(2026, 11, 6, 10, 0, 30);
/** What one request holds and counts (all are alike; the key plays no part in the hold), once the tokenizer counts the prompt. */
let ONE: ReturnType<typeof computeHold>;

beforeAll(async () => {
  await warmTokenizer();
  ONE = computeHold(mini, chatAdmission('hold', {} as KeyRecord, mini, request, NOW));
});

const lostAnswer = () => new DynamoError('NetworkingError', 'socket hang up', undefined, 1, {}, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));

async function setup(account: { creditsMicroUsd: number; rpm: number; tpm: number }) {
  const { tables } = await createTestTables();
  const client = createDynamoClient(testDynamoEndpoint());
  /** Admission transactions (those that put hold items), by how many holds they put, and whether they landed. */
  const admissions: Array<{ holds: number; ok: boolean }> = [];
  /** Answers to lose, in order, of group admissions: before or after the write landed. */
  const toLose: Array<'before' | 'after'> = [];
  client.intercept(async (operation, input, next) => {
    if (operation !== 'TransactWriteItems') return next();
    const holds = (input.TransactItems as Array<Record<string, { TableName: string }>>).filter((i) => i.Put?.TableName === tables.holds).length;
    if (!holds) return next();
    if (holds > 1 && toLose.length) {
      if (toLose.shift() === 'after') await next();
      throw lostAnswer();
    }
    try {
      const out = await next();
      admissions.push({ holds, ok: true });
      return out;
    } catch (err) {
      admissions.push({ holds, ok: false });
      throw err;
    }
  });
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const { accountId, record } = await fundedAccount(stores, { tier: 'enterprise', createdAtMs: 0, storeKey: false, ...account });
  const now = () => NOW;
  const money = moneyRuntime({ stores, tables, log: memoryLogger(), rollupsInline: true, groupCommit: true, sweepGraceMs: 0, now });
  const admission = new CreditAdmission({
    store: stores.accounts,
    groupCommit: true,
    holds: stores.holds,
    tiers: new TierCache(stores.tiers, 60_000, now),
    settlements: money.settlements,
    keysTable: tables.keys,
    maxRequestMs: 900_000,
    now,
  });
  /** `n` admissions at once; each one's outcome: admitted, or the status of its refusal. */
  const admitAll = (n: number, prefix: string) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        admission.admit(chatAdmission(`${prefix}${i}-${accountId}`, record, mini, request, NOW)).then(
          (admitted): Admitted | number => admitted,
          (err) => {
            if (err instanceof GatewayError) return err.status;
            throw err;
          },
        ),
      ),
    );
  const statuses = (outcomes: Array<Admitted | number>) => {
    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[typeof o === 'number' ? o : 200] = (counts[typeof o === 'number' ? o : 200] ?? 0) + 1;
    return counts;
  };
  const settleAll = async (outcomes: Array<Admitted | number>) => {
    await Promise.all(outcomes.filter((o): o is Admitted => typeof o !== 'number').map((a) => a.settle(completed({ prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 }))));
  };
  return { stores, accountId, admissions, toLose, admitAll, statuses, settleAll };
}

describe('admissions grouped (local mode)', () => {
  it('admits exactly the requests-per-minute limit of 400 at once, in fewer transactions than requests', async () => {
    const t = await setup({ creditsMicroUsd: 1_000_000_000, rpm: 150, tpm: 100_000_000 });
    const outcomes = await t.admitAll(400, 'rpm');
    expect(t.statuses(outcomes)).toEqual({ 200: 150, 429: 250 });
    // Grouped: some transaction put several holds and landed; the admitted took fewer than one each.
    const landed = t.admissions.filter((a) => a.ok);
    expect(landed.some((a) => a.holds > 1)).toBe(true);
    expect(landed.reduce((s, a) => s + a.holds, 0)).toBe(150);
    expect(landed.length).toBeLessThan(150);
    const account = (await t.stores.accounts.get(t.accountId))!;
    expect(account.counts.requests).toBe(150);
    expect(account.counts.tokens).toBe(150 * ONE.rateTokens);
    expect(account.inFlight).toBe(150);
    expect(account.heldMicroUsd).toBe(150 * ONE.holdMicroUsd);
    expect((await t.stores.holds.ofAccount(t.accountId)).length).toBe(150);
    await t.settleAll(outcomes);
    expectBooksBalance(await booksOf(t.stores, t.accountId));
  }, 60_000);

  it('admits exactly what the tokens-per-minute limit holds', async () => {
    // Room for 90 requests and half of another.
    const tpm = 90 * ONE.rateTokens + Math.floor(ONE.rateTokens / 2);
    const t = await setup({ creditsMicroUsd: 1_000_000_000, rpm: 100_000, tpm });
    const outcomes = await t.admitAll(300, 'tpm');
    expect(t.statuses(outcomes)).toEqual({ 200: 90, 429: 210 });
    expect(t.admissions.filter((a) => a.ok && a.holds > 1).length).toBeGreaterThan(0);
    const account = (await t.stores.accounts.get(t.accountId))!;
    expect(account.counts.tokens).toBe(90 * ONE.rateTokens);
    expect(account.counts.tokens).toBeLessThanOrEqual(tpm);
    await t.settleAll(outcomes);
    expectBooksBalance(await booksOf(t.stores, t.accountId));
  }, 60_000);

  it('admits exactly what the balance pays for: the rest are refused with 402, never overdrawn', async () => {
    const credits = 70 * ONE.holdMicroUsd + Math.floor(ONE.holdMicroUsd / 2);
    const t = await setup({ creditsMicroUsd: credits, rpm: 100_000, tpm: 100_000_000 });
    const outcomes = await t.admitAll(250, 'pay');
    expect(t.statuses(outcomes)).toEqual({ 200: 70, 402: 180 });
    expect(t.admissions.filter((a) => a.ok && a.holds > 1).length).toBeGreaterThan(0);
    const account = (await t.stores.accounts.get(t.accountId))!;
    expect(account.balanceMicroUsd).toBe(credits - 70 * ONE.holdMicroUsd);
    expect(account.balanceMicroUsd).toBeGreaterThanOrEqual(0);
    await t.settleAll(outcomes);
    expectBooksBalance(await booksOf(t.stores, t.accountId));
  }, 60_000);

  it('a group whose answer is lost, before or after it landed: each request admitted once, no hold left behind', async () => {
    const t = await setup({ creditsMicroUsd: 1_000_000_000, rpm: 100_000, tpm: 100_000_000 });
    t.toLose.push('after', 'before', 'after', 'after', 'before', 'after');
    const outcomes = await t.admitAll(300, 'lost');
    expect(t.toLose).toEqual([]);
    const admitted = outcomes.filter((o): o is Admitted => typeof o !== 'number');
    // A request may end 503 only after its own resends went unanswered too; here each is admitted.
    expect(t.statuses(outcomes)).toEqual({ 200: 300 });
    const account = (await t.stores.accounts.get(t.accountId))!;
    // Counted and held once each, whatever landed unanswered.
    expect(account.counts.requests).toBe(300);
    expect(account.inFlight).toBe(300);
    expect(account.heldMicroUsd).toBe(300 * ONE.holdMicroUsd);
    expect((await t.stores.holds.ofAccount(t.accountId)).length).toBe(300);
    await t.settleAll(admitted);
    await sleep(50);
    const books = await booksOf(t.stores, t.accountId);
    expectBooksBalance(books);
    expect(books.requests).toHaveLength(300);
  }, 60_000);
});
