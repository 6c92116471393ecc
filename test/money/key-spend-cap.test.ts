import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { warmTokenizer } from '../../lambda/money/tokens';
import { createStores } from '../../lambda/runtime';
import { monthOf } from '../../lambda/store/keys';
import { fundedAccount } from '../support/accounts';
import { createTestTables } from '../support/dynamo';
import { chatAdmission, completed, moneyOver } from '../support/money';

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const model = catalog.get('gpt-4o-mini')!;

async function setup(spendCapMicroUsd: number | undefined, rpm?: number) {
  const { client, tables } = await createTestTables();
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const { accountId, record: key } = await fundedAccount(stores, {
    tier: 'enterprise',
    creditsMicroUsd: 100_000_000,
    rpm: 100_000,
    tpm: 100_000_000,
    createdAtMs: 0,
    key: { spendCapMicroUsd, rpm },
    storeKey: { accountsTable: tables.accounts },
  });
  return { client, tables, stores, accountId, key };
}

const request = (maxTokens = 1000) => parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens });

/** Usage that spends the whole hold: the prompt as estimated and every output token. */
const fullUse = (promptTokens: number, maxTokens = 1000) =>
  completed({ prompt_tokens: promptTokens, completion_tokens: maxTokens, total_tokens: promptTokens + maxTokens });

async function ledgerCost(stores: ReturnType<typeof createStores>, accountId: string): Promise<number> {
  return (await stores.usage.requests(accountId, 0, Date.now() + 1e9)).reduce((sum, e) => sum - e.amountMicroUsd, 0);
}

beforeAll(() => warmTokenizer());

describe('a key with a monthly spend cap', () => {
  it('never spends beyond its cap, whatever the concurrency across instances (50 requests, 5 instances)', async () => {
    const cap = 10_000; // $0.01: about 16 requests of 1,000 output tokens of gpt-4o-mini
    const { stores, tables, key, accountId } = await setup(cap);
    const instances = Array.from({ length: 5 }, () => moneyOver(stores, tables).admission);
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const req = chatAdmission(`r${i}-${accountId}`, key, model, request(), Date.now());
        try {
          const admitted = await instances[i % 5].admit(req);
          await admitted.settle(fullUse(req.promptTokens));
          return 200;
        } catch (err) {
          if (!(err instanceof GatewayError)) throw err;
          expect(err.status).toBe(402);
          expect(err.type).toBe('insufficient_quota');
          expect(err.message).toContain('$0.01');
          return err.status;
        }
      }),
    );
    const spent = await ledgerCost(stores, accountId);
    const admitted = results.filter((s) => s === 200).length;
    expect(admitted).toBeGreaterThan(5);
    expect(results.filter((s) => s === 402).length).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(cap);
    // The key item's month total is exactly what the ledger charged (no holds left).
    const item = await stores.keys.getByHash(key.keyHash);
    expect(item?.spendMonth).toBe(monthOf(Date.now()));
    expect(item?.spendUsedMicroUsd).toBe(spent);
    // Uncapped accounting is unchanged: the account paid exactly the ledger.
    expect((await stores.accounts.get(accountId))!.balanceMicroUsd).toBe(100_000_000 - spent);
  });

  it('gives back the unused part of a hold to the month total, so the cap counts what was spent', async () => {
    const { stores, tables, key, accountId } = await setup(2_000);
    const { admission } = moneyOver(stores, tables);
    // Each hold is about 600 micro-USD; each request spends only its prompt and 10 tokens.
    for (let i = 0; i < 20; i++) {
      const req = chatAdmission(`small${i}-${accountId}`, key, model, request(), Date.now());
      const admitted = await admission.admit(req);
      await admitted.settle(completed({ prompt_tokens: req.promptTokens, completion_tokens: 10, total_tokens: req.promptTokens + 10 }));
    }
    const spent = await ledgerCost(stores, accountId);
    expect((await stores.keys.getByHash(key.keyHash))?.spendUsedMicroUsd).toBe(spent);
  });

  it('starts afresh in a new month (UTC), and holds of the old month do not count in the new one', async () => {
    const { stores, tables, key, accountId } = await setup(1_000);
    let now = Date.UTC(2026, 10, 30, 23, 59, 0);
    const { admission } = moneyOver(stores, tables, () => now);
    const held = await admission.admit(chatAdmission(`m1-${accountId}`, key, model, request(), now));
    await expect(admission.admit(chatAdmission(`m2-${accountId}`, key, model, request(), now))).rejects.toMatchObject({ status: 402 });
    now = Date.UTC(2026, 11, 1, 0, 0, 30);
    const next = await admission.admit(chatAdmission(`m3-${accountId}`, key, model, request(), now));
    // The November request settles in December: it changes November's total no more.
    await held.settle(completed({ prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 }));
    await next.settle(fullUse(8));
    const item = await stores.keys.getByHash(key.keyHash);
    expect(item?.spendMonth).toBe(202612);
    const december = (await stores.usage.requests(accountId, now - 60_000, now + 60_000)).reduce((s, e) => s - e.amountMicroUsd, 0);
    expect(item?.spendUsedMicroUsd).toBe(december);
  });

  it('applies a changed cap at once, though the key record admission holds still names the old one', async () => {
    const { stores, tables, key, accountId } = await setup(100_000);
    const { admission } = moneyOver(stores, tables);
    const first = await admission.admit(chatAdmission(`c1-${accountId}`, key, model, request(), Date.now()));
    await first.settle(fullUse(8));
    await stores.keys.update(key.keyId, { spendCapMicroUsd: 500 });
    const err = await admission.admit(chatAdmission(`c2-${accountId}`, key, model, request(), Date.now())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(402);
    expect((err as GatewayError).message).toContain('monthly spend cap of $0.000500');
    // Removing the cap lets the key spend again, with the same stale record.
    await stores.keys.update(key.keyId, { spendCapMicroUsd: null });
    await expect(admission.admit(chatAdmission(`c3-${accountId}`, key, model, request(), Date.now()))).resolves.toBeDefined();
  });

  it('lowers the output of a request that names no limit to what the cap still pays', async () => {
    const { stores, tables, key, accountId } = await setup(5_000);
    const { admission } = moneyOver(stores, tables);
    const req = chatAdmission(`l1-${accountId}`, key, model, parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), Date.now());
    const admitted = await admission.admit(req);
    expect(admitted.outputTokens).toBeLessThan(model.maxOutputTokens);
    expect(admitted.outputTokens).toBeGreaterThan(0);
  });

  it('keeps its rate caps working beside the spend cap (one update of the key item)', async () => {
    const { stores, tables, key, accountId } = await setup(1_000_000, 2);
    const { admission } = moneyOver(stores, tables);
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      codes.push(
        await admission.admit(chatAdmission(`rc${i}-${accountId}`, key, model, request(10), Date.now())).then(
          () => 200,
          (e: GatewayError) => e.status,
        ),
      );
    }
    expect(codes).toEqual([200, 200, 429]);
  });
});

describe('keys per account', () => {
  it('refuses a key beyond the limit, however many are created at once', async () => {
    const { stores, tables, accountId } = await setup(undefined);
    const created = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        stores.keys.create(
          { keyHash: `h${i}-${accountId}`, keyId: `k${i}-${accountId}`, accountId, name: '', prefix: '', status: 'active', createdAtMs: 0 },
          { accountsTable: tables.accounts, maxKeys: 8 },
        ),
      ),
    );
    // One key exists from setup: 7 more fit.
    expect(created.filter((r) => r.status === 'fulfilled')).toHaveLength(7);
    expect(created.find((r) => r.status === 'rejected')).toMatchObject({ reason: { max: 8 } });
    // Revoking one that was created (which ones won the race varies) frees its place, once (a second revoke changes nothing).
    const winner = created.findIndex((r) => r.status === 'fulfilled');
    await stores.keys.revoke(`k${winner}-${accountId}`, tables.accounts);
    await stores.keys.revoke(`k${winner}-${accountId}`, tables.accounts);
    await stores.keys.create({ keyHash: `hx-${accountId}`, keyId: `kx-${accountId}`, accountId, name: '', prefix: '', status: 'active', createdAtMs: 0 }, { accountsTable: tables.accounts, maxKeys: 8 });
    await expect(
      stores.keys.create({ keyHash: `hy-${accountId}`, keyId: `ky-${accountId}`, accountId, name: '', prefix: '', status: 'active', createdAtMs: 0 }, { accountsTable: tables.accounts, maxKeys: 8 }),
    ).rejects.toMatchObject({ max: 8 });
  });
});
