import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { rollupHandler } from '../../lambda/entry/rollup-lambda';
import { warmTokenizer } from '../../lambda/money/tokens';
import { createStores } from '../../lambda/runtime';
import type { KeyRecord } from '../../lambda/store/keys';
import { keyUsage, readKeyUsage, type RollupsStore } from '../../lambda/store/rollups';
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

  it('catches up, once, ledger items that were never rolled up (local mode after a crash)', async () => {
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
