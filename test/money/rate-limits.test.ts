import { tableEnv } from '../../lambda/store/tables';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { warmTokenizer } from '../../lambda/money/tokens';
import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { createStores } from '../../lambda/runtime';
import type { KeyRecord } from '../../lambda/store/keys';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { chatAdmission, completed as ok, moneyOver } from '../support/money';

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const model = catalog.get('gpt-4o-mini')!;

async function setup(limits: { rpm: number; tpm: number }, creditsMicroUsd = 100_000_000) {
  const { client, tables } = await createTestTables();
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const accountId = `acct_${Math.random().toString(36).slice(2)}`;
  await stores.accounts.create({ id: accountId, name: 'x', tier: 'enterprise', balanceMicroUsd: 0, status: 'active', createdAtMs: 0, ...limits });
  await stores.accounts.topUp(accountId, creditsMicroUsd, 'initial');
  const key: KeyRecord = {
    keyHash: `hash_${accountId}`,
    keyId: `key_${accountId}`,
    accountId,
    name: 'k',
    prefix: 'it_x',
    status: 'active',
    createdAtMs: 0,
    accountTier: 'enterprise',
    accountRpm: limits.rpm,
    accountTpm: limits.tpm,
  };
  return { client, tables, stores, accountId, key };
}

function request(content = 'hi', extra: object = {}) {
  return parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 10, ...extra });
}

async function outcomeOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (err) {
    if (err instanceof GatewayError) return err.status;
    throw err;
  }
}


beforeAll(() => warmTokenizer());

describe('sliding window with a controllable clock', () => {
  it('carries the previous minute into the next one, with no double burst at the boundary', async () => {
    const { stores, tables, key } = await setup({ rpm: 10, tpm: 1_000_000 });
    let now = 1_000 * 60_000 + 59_000; // 59 s into a minute
    const admission = moneyOver(stores, tables, () => now).admission;
    const admit = () => outcomeOf(admission.admit(chatAdmission(`r${Math.random()}`, key, model, request(), now)));

    const first = [];
    for (let i = 0; i < 12; i++) first.push(await admit());
    expect(first.filter((s) => s === 200)).toHaveLength(10);
    expect(first.slice(10)).toEqual([429, 429]);

    now += 1_000; // the next minute begins: the last 60 s still hold all 10
    expect(await admit()).toBe(429);

    now += 30_000; // half of the previous minute has slid out: 10 - 10 × 0.5 = 5 allowed
    const second = [];
    for (let i = 0; i < 7; i++) second.push(await admit());
    expect(second).toEqual([200, 200, 200, 200, 200, 429, 429]);
  });

  it('tells a 429 when capacity actually frees', async () => {
    const { stores, tables, key } = await setup({ rpm: 2, tpm: 1_000_000 });
    let now = 2_000 * 60_000 + 15_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const admit = () => admission.admit(chatAdmission(`r${Math.random()}`, key, model, request(), now));
    await admit();
    await admit();
    const err = (await admit().catch((e) => e)) as GatewayError;
    expect(err.status).toBe(429);
    // Both requests are in this minute: at the next minute they become the previous one (2 × 1.0), so
    // one request fits once 1/2 of that minute has passed: 45 s + 30 s.
    expect(Number(err.headers['retry-after-ms'])).toBe(75_000);
    expect(err.headers['retry-after']).toBe('75');
    expect(err.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(err.headers['x-ratelimit-reset-requests']).toBe('1m45s');
  });

  it('admits on tokens per minute and corrects the count at settlement', async () => {
    const { stores, tables, key, accountId } = await setup({ rpm: 1000, tpm: 100 });
    const now = 3_000 * 60_000 + 1_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const big = request('hello', { max_tokens: 40 });
    const a = await admission.admit(chatAdmission('a', key, model, big, now));
    const tokensAfterAdmit = (await stores.accounts.get(accountId))!.counts.tokens;
    expect(tokensAfterAdmit).toBeGreaterThan(40);
    const b = await admission.admit(chatAdmission('b', key, model, big, now));
    const tokensAfterBoth = (await stores.accounts.get(accountId))!.counts.tokens;
    // A third needs as many again and no longer fits in 100.
    await expect(admission.admit(chatAdmission('c', key, model, big, now))).rejects.toMatchObject({ status: 429 });
    // Each used only 8 tokens in all: settlement gives the rest back to the minute.
    await a.settle(ok({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 }));
    expect((await stores.accounts.get(accountId))!.counts.tokens).toBe(tokensAfterBoth - tokensAfterAdmit + 8);
    await b.settle(ok({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 }));
    expect((await stores.accounts.get(accountId))!.counts.tokens).toBe(16);
    await expect(admission.admit(chatAdmission('c', key, model, big, now))).resolves.toBeDefined();
  });
});

describe('exactly-once settlement', () => {
  it('does not charge twice when a settlement is retried after a crash', async () => {
    const { stores, tables, key, accountId } = await setup({ rpm: 100, tpm: 1_000_000 }, 1_000_000);
    const admission = moneyOver(stores, tables).admission;
    const admitted = await admission.admit(chatAdmission('req-once', key, model, request(), Date.now()));
    const outcome = ok({ prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 });
    await admitted.settle(outcome);
    const once = (await stores.accounts.get(accountId))!.balanceMicroUsd;
    await admitted.settle(outcome);
    await admitted.settle(outcome);
    expect((await stores.accounts.get(accountId))!.balanceMicroUsd).toBe(once);
    const items = await stores.usage.all(accountId);
    expect(items.filter((i) => i.kind === 'request')).toHaveLength(1);
    expect(items.reduce((s, i) => s + i.amountMicroUsd, 0)).toBe(once);
  });

  it('adds a top-up sent twice once', async () => {
    const { stores, accountId } = await setup({ rpm: 100, tpm: 1000 }, 0);
    expect(await stores.accounts.topUp(accountId, 5_000_000, 'stripe_pi_1')).toBe('added');
    expect(await stores.accounts.topUp(accountId, 5_000_000, 'stripe_pi_1')).toBe('duplicate');
    expect((await stores.accounts.get(accountId))!.balanceMicroUsd).toBe(5_000_000);
  });
});

describe('limits across separate gateway processes', () => {
  const processes: ChildProcess[] = [];
  afterAll(() => {
    for (const p of processes) p.kill('SIGKILL');
  });

  it('four processes sharing one table admit exactly the account’s 10 RPM out of 40 concurrent requests', async () => {
    const { tables, stores, accountId } = await setup({ rpm: 10, tpm: 10_000_000 });
    const { generateApiKey, hashApiKey, displayPrefix } = await import('../../lambda/auth/api-key');
    const key = generateApiKey();
    await stores.keys.create({
      keyHash: hashApiKey(key),
      keyId: 'key_multi',
      accountId,
      name: 'multi',
      prefix: displayPrefix(key),
      status: 'active',
      createdAtMs: Date.now(),
      accountTier: 'enterprise',
      accountRpm: 10,
      accountTpm: 10_000_000,
    });
    const env = {
      ...process.env,
      ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(),
      ...tableEnv(tables),
    };
    const urls = await Promise.all(
      Array.from({ length: 4 }, () => {
        // `--import tsx` rather than the tsx CLI: one process each, so killing it leaves no orphan holding Jest's pipes.
        const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '../support/gateway-process.ts')], {
          env,
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        processes.push(child);
        return new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /ITAPI_BASE_URL=(\S+)/.exec(out);
            if (m) resolve(m[1]);
          });
          child.once('exit', (code) => reject(new Error(`gateway process exited with ${code}`)));
        });
      }),
    );
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        fetch(`${urls[i % 4]}/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
        }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
    for (const res of responses.filter((r) => r.status === 429)) {
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('10');
      expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(Number(res.headers.get('retry-after-ms'))).toBeGreaterThan(0);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      const body = await res.json();
      expect(body.error).toMatchObject({ type: 'rate_limit_exceeded', code: 'rate_limit_exceeded' });
    }
  }, 60_000);
});

describe('a key with caps of its own', () => {
  it('is held to its own lower limit while the account’s other keys are not', async () => {
    const { stores, tables, key: accountKey } = await setup({ rpm: 100, tpm: 10_000_000 });
    let now = 4_000 * 60_000 + 10_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const capped: KeyRecord = { ...accountKey, keyHash: `${accountKey.keyHash}_capped`, keyId: `${accountKey.keyId}_capped`, rpm: 2 };
    await stores.keys.create(capped);
    const admit = (key: KeyRecord) => outcomeOf(admission.admit(chatAdmission(`r${Math.random()}`, key, model, request(), now)));

    expect([await admit(capped), await admit(capped), await admit(capped)]).toEqual([200, 200, 429]);
    const err = (await admission.admit(chatAdmission('x', capped, model, request(), now)).catch((e) => e)) as GatewayError;
    expect(err.message).toContain('requests of this key');
    expect(err.headers['x-ratelimit-limit-requests']).toBe('2');
    // The account's other key still has the account's 100.
    expect([await admit(accountKey), await admit(accountKey)]).toEqual([200, 200]);
    // Both keys' requests count against the account.
    expect((await stores.accounts.get(accountKey.accountId))!.counts.requests).toBe(4);
    // The key's window slides like the account's: a minute and a half later it may send again.
    now += 90_000;
    expect(await admit(capped)).toBe(200);
  });

  it('tells its own numbers in the rate-limit headers when its cap is the lower one', async () => {
    const { stores, tables, key: accountKey } = await setup({ rpm: 100, tpm: 10_000_000 });
    const admission = moneyOver(stores, tables).admission;
    const capped: KeyRecord = { ...accountKey, keyHash: `${accountKey.keyHash}_c2`, keyId: `${accountKey.keyId}_c2`, rpm: 5 };
    await stores.keys.create(capped);
    const admitted = await admission.admit(chatAdmission('h', capped, model, request(), Date.now()));
    expect(admitted.headers['x-ratelimit-limit-requests']).toBe('5');
    expect(admitted.headers['x-ratelimit-remaining-requests']).toBe('4');
    expect(admitted.headers['x-ratelimit-limit-tokens']).toBe('10000000');
  });
});
