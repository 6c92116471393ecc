import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { rollupHandler } from '../../lambda/entry/rollup-lambda';
import { warmTokenizer } from '../../lambda/money/tokens';
import { createStores } from '../../lambda/runtime';
import type { KeyRecord } from '../../lambda/store/keys';
import { DynamoError } from '../../lambda/store/dynamo';
import { keyUsage, readKeyUsage, type RollupsStore } from '../../lambda/store/rollups';
import type { LedgerEntry } from '../../lambda/store/usage';
import { ledgerSortKey, ledgerToItem } from '../../lambda/store/usage';
import { memoryLogger } from '../support/gateway';
import { fundedAccount } from '../support/accounts';
import { createTestTables } from '../support/dynamo';
import { chatAdmission, completed, moneyOver } from '../support/money';

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const model = catalog.get('gpt-4o-mini')!;

async function setup() {
  const { client, tables } = await createTestTables();
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const { accountId, record } = await fundedAccount(stores, { tier: 'enterprise', creditsMicroUsd: 100_000_000, rpm: 100_000, tpm: 100_000_000, createdAtMs: 0, storeKey: false });
  const key = (n: number): KeyRecord => ({ ...record, keyHash: `hash${n}_${accountId}`, keyId: `key${n}_${accountId}`, name: `k${n}` });
  return { client, tables, stores, accountId, key };
}

/** A stream record as Lambda delivers it for a ledger item (NEW_IMAGE). */
const insertRecord = (item: Record<string, unknown>, seq: string) => ({ eventName: 'INSERT', eventID: `e${seq}`, dynamodb: { NewImage: item, SequenceNumber: seq } });

beforeAll(() => warmTokenizer());

describe('usage roll-ups', () => {
  it('adds each settled request once, however often the stream delivers it, and sums to the ledger', async () => {
    const { stores, tables, accountId, key } = await setup();
    const { admission } = moneyOver(stores, tables);
    const k1 = key(1);
    const k2 = key(2);
    const now = Date.now();
    for (let i = 0; i < 6; i++) {
      const k = i % 3 === 0 ? k2 : k1;
      const req = chatAdmission(`req${i}-${accountId}`, k, model, parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 }), now);
      const admitted = await admission.admit(req);
      await admitted.settle(completed({ prompt_tokens: 8, completion_tokens: 10 + i, total_tokens: 18 + i }));
    }
    const ledger = await stores.usage.requests(accountId, 0, now + 60_000);
    expect(ledger).toHaveLength(6);
    const handler = rollupHandler(stores.rollups, memoryLogger());
    const records = ledger.map((e, i) => insertRecord(ledgerToItem(e), String(100 + i)));
    // A top-up insert and a roll-up mark (MODIFY) are not usage.
    const topUp = (await stores.usage.topUps(accountId))[0];
    const batch = { Records: [...records, insertRecord(ledgerToItem(topUp), '99'), { ...records[0], eventName: 'MODIFY' }] };
    expect(await handler(batch)).toEqual({ batchItemFailures: [] });
    expect(await handler({ Records: records })).toEqual({ batchItemFailures: [] }); // redelivered
    const day = new Date(now).toISOString().slice(0, 10);
    const rollups = await stores.rollups.range(accountId, day, day);
    expect(rollups.map((r) => [r.keyId, r.requests]).sort()).toEqual([
      [k1.keyId, 4],
      [k2.keyId, 2],
    ]);
    const ledgerCost = ledger.reduce((s, e) => s - e.amountMicroUsd, 0);
    expect(rollups.reduce((s, r) => s + r.costMicroUsd, 0)).toBe(ledgerCost);
    expect(rollups.reduce((s, r) => s + r.completionTokens, 0)).toBe(ledger.reduce((s, e) => s + (e.completionTokens ?? 0), 0));
    const usage = await readKeyUsage(stores.rollups, accountId, now);
    expect(usage.get(k1.keyId)!.last30DaysMicroUsd + usage.get(k2.keyId)!.last30DaysMicroUsd).toBe(ledgerCost);
    expect(usage.get(k1.keyId)!.lastUsedAtMs).toBe(now);
  });

  it('reports the first record that fails, so it and those after it come again', async () => {
    const { stores, accountId } = await setup();
    const entry = (id: string) => ({ accountId, kind: 'request' as const, atMs: Date.now(), id, amountMicroUsd: -5, keyId: 'k', model: 'm', status: 'completed' as const });
    const failing: Pick<RollupsStore, 'apply'> = {
      apply: async (e) => {
        if (e.id === 'b') throw Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' });
        return stores.rollups.apply(e);
      },
    };
    const log = memoryLogger();
    const result = await rollupHandler(failing, log)({
      Records: [insertRecord(ledgerToItem(entry('a')), '1'), insertRecord(ledgerToItem(entry('b')), '2'), insertRecord(ledgerToItem(entry('c')), '3')],
    });
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    expect(log.lines.join('\n')).toContain('rollup_failed');
  });

  it('catches up, once, ledger items that were never rolled up (local mode: data from before roll-ups)', async () => {
    const { stores, tables, client, accountId } = await setup();
    const e = { accountId, kind: 'request' as const, atMs: Date.now(), id: 'lost-1', amountMicroUsd: -42, keyId: 'kx', model: 'gpt-4o-mini', status: 'completed' as const };
    await client.call('PutItem', { TableName: tables.usage, Item: ledgerToItem(e) });
    expect(await stores.rollups.catchUp()).toBeGreaterThanOrEqual(1);
    expect(await stores.rollups.catchUp()).toBe(0);
    const item = await client.call('GetItem', { TableName: tables.usage, Key: { account_id: { S: accountId }, sk: { S: ledgerSortKey(e) } } });
    expect(item.Item?.rolled_up).toEqual({ BOOL: true });
    const day = new Date(e.atMs).toISOString().slice(0, 10);
    expect((await stores.rollups.range(accountId, day, day)).map((r) => r.costMicroUsd)).toEqual([42]);
  });
});

describe('roll-ups of many ledger items in one transaction (the catch-up)', () => {
  /** `n` settled requests' ledger items, over two keys and two models, some failed, cached or uncharged. */
  async function ledger(n: number) {
    const { stores, tables, client, accountId } = await setup();
    const at = Date.now();
    const entries: LedgerEntry[] = Array.from({ length: n }, (_, i) => ({
      accountId,
      kind: 'request' as const,
      atMs: at + i,
      id: `b${i}-${accountId}`,
      amountMicroUsd: -(100 + i),
      keyId: `k${i % 2}`,
      model: i % 3 === 0 ? 'gpt-4o' : 'gpt-4o-mini',
      status: i % 7 === 0 ? ('failed' as const) : ('completed' as const),
      promptTokens: 10 + i,
      completionTokens: 2 * i,
      cachedTokens: i % 5,
      unchargedMicroUsd: i % 11 === 0 ? 3 : undefined,
    }));
    for (const e of entries) await client.call('PutItem', { TableName: tables.usage, Item: ledgerToItem(e) });
    const writes: number[] = [];
    client.intercept((operation, input, next) => {
      if (operation === 'TransactWriteItems') writes.push((input.TransactItems as unknown[]).length);
      return next();
    });
    /** The roll-ups as the ledger says they must be, per key and model. */
    const expected = (list: LedgerEntry[]) => {
      const by = new Map<string, number[]>();
      for (const e of list) {
        const k = `${e.keyId}|${e.model}`;
        const v = by.get(k) ?? [0, 0, 0, 0, 0, 0, 0, 0];
        by.set(k, [v[0] + 1, v[1] + (e.status === 'failed' ? 1 : 0), v[2] + e.promptTokens!, v[3] + e.completionTokens!, v[4] + e.cachedTokens!, v[5] - e.amountMicroUsd, v[6] + (e.unchargedMicroUsd ?? 0), Math.max(v[7], e.atMs)]);
      }
      return [...by].sort();
    };
    const actual = async () => {
      const day = new Date(at).toISOString().slice(0, 10);
      return (await stores.rollups.range(accountId, day, day))
        .map((r) => [`${r.keyId}|${r.model}`, [r.requests, r.failedRequests, r.promptTokens, r.completionTokens, r.cachedTokens, r.costMicroUsd, r.unchargedMicroUsd, r.lastAtMs]] as const)
        .sort();
    };
    return { stores, client, entries, writes, expected, actual };
  }

  it('the catch-up adds a backlog of 40 in one write, each once, summing to the ledger; one at a time, one write each', async () => {
    const { stores, entries, writes, expected, actual } = await ledger(40);
    expect(await stores.rollups.catchUp()).toBe(40);
    // 40 marks and one roll-up per key and model (4): one write, not 40.
    expect(writes).toEqual([44]);
    expect(await actual()).toEqual(expected(entries));
    // Again (the next start): nothing to add.
    expect(await stores.rollups.catchUp()).toBe(0);
    expect(await actual()).toEqual(expected(entries));
    // Delivered again one by one (the stream's redelivery): nothing added.
    for (const e of entries.slice(0, 5)) expect(await stores.rollups.apply(e)).toBe('duplicate');
    expect(await actual()).toEqual(expected(entries));
    // One at a time, as the usage stream delivers them: one write each.
    const one = await ledger(3);
    for (const e of one.entries) expect(await one.stores.rollups.apply(e)).toBe('applied');
    expect(one.writes).toEqual([2, 2, 2]);
    expect(await one.actual()).toEqual(one.expected(one.entries));
  });

  it('a batch with one item in already lands nothing, and each entry is then applied on its own', async () => {
    const { stores, entries, writes, expected, actual } = await ledger(6);
    expect(await stores.rollups.apply(entries[3])).toBe('applied');
    writes.length = 0;
    const results = await stores.rollups.applyMany(entries);
    // The one in already: `duplicate`, or `applied` when DynamoDB answers its token's replay (nothing added either way).
    expect(results.map((r, i) => (r.status === 'fulfilled' ? (i === 3 && r.value === 'applied' ? 'duplicate' : r.value) : 'rejected'))).toEqual(['applied', 'applied', 'applied', 'duplicate', 'applied', 'applied']);
    expect(writes[0]).toBeGreaterThan(6); // the batch was tried (6 marks and the roll-ups), then one by one
    expect(writes.slice(1)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(await actual()).toEqual(expected(entries));
  });

  it('a batch whose answer is lost after it landed is added once (the resends find every mark)', async () => {
    const { stores, client, entries, expected, actual } = await ledger(8);
    let lost = 0;
    client.intercept(async (operation, input, next) => {
      const out = await next();
      if (operation === 'TransactWriteItems' && (input.TransactItems as unknown[]).length > 2 && lost++ === 0) {
        throw new DynamoError('NetworkingError', 'socket hang up', undefined, 1, {}, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      }
      return out;
    });
    const results = await stores.rollups.applyMany(entries);
    expect(lost).toBe(1);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'rejected'))).toEqual(entries.map(() => 'duplicate'));
    expect(await actual()).toEqual(expected(entries));
  });
});

describe('keyUsage', () => {
  it('splits spend into the last 30 days (today included) and this calendar month (UTC)', () => {
    const now = Date.UTC(2026, 11, 5, 12);
    const r = (day: string, cost: number, lastAtMs = Date.parse(`${day}T10:00:00Z`)) => ({
      accountId: 'a', day, keyId: 'k', model: 'm', requests: 1, failedRequests: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, costMicroUsd: cost, unchargedMicroUsd: 0, lastAtMs,
    });
    const usage = keyUsage([r('2026-11-05', 1), r('2026-11-06', 10), r('2026-11-30', 100), r('2026-12-01', 1000), r('2026-12-05', 10000)], now).get('k')!;
    expect(usage.last30DaysMicroUsd).toBe(11110);
    expect(usage.thisMonthMicroUsd).toBe(11000);
    expect(usage.lastUsedAtMs).toBe(Date.parse('2026-12-05T10:00:00Z'));
  });
});
