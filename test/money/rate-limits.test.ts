import { tableEnv } from '../../lambda/store/tables';
import { warmTokenizer } from '../../lambda/money/tokens';
import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { createStores } from '../../lambda/runtime';
import type { KeyRecord } from '../../lambda/store/keys';
import { fundedAccount, mintKey } from '../support/accounts';
import { startGatewayProcess } from '../support/spawned-gateway';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { chatAdmission, completed as ok, moneyOver } from '../support/money';

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const model = catalog.get('gpt-4o-mini')!;

async function setup(limits: { rpm: number; tpm: number }, creditsMicroUsd = 100_000_000) {
  const { client, tables } = await createTestTables();
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const { accountId, record: key } = await fundedAccount(stores, { tier: 'enterprise', creditsMicroUsd, createdAtMs: 0, ...limits, storeKey: false });
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
    // one request fits once 1/2 of that minute has passed: 45 s + 30 s, told as at most a minute.
    expect(Number(err.headers['retry-after-ms'])).toBe(60_000);
    expect(err.headers['retry-after']).toBe('60');
    expect(err.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(err.headers['x-ratelimit-reset-requests']).toBe('1m0s');
    // A retry after what was told meets a short wait, the rest of the true one (15 s), never another minute.
    now += 60_000;
    const again = (await admit().catch((e) => e)) as GatewayError;
    expect(again.status).toBe(429);
    expect(Number(again.headers['retry-after-ms'])).toBe(15_000);
    now += 15_000;
    await expect(admit()).resolves.toBeDefined();
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
  it('four processes sharing one table admit exactly the account’s 10 RPM out of 40 concurrent requests', async () => {
    const { tables, stores, accountId } = await setup({ rpm: 10, tpm: 10_000_000 });
    const { key } = await mintKey(stores, accountId, { fields: { accountTier: 'enterprise', accountRpm: 10, accountTpm: 10_000_000 } });
    const env = {
      ...process.env,
      ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(),
      ...tableEnv(tables),
    };
    const urls = (await Promise.all(Array.from({ length: 4 }, () => startGatewayProcess(env)))).map((g) => g.baseUrl);
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

describe('output limits fitted to what the minute has left', () => {
  // A coding agent's model: 128k of output, more than a Starter minute.
  const agentModel = parseCatalog(
    {
      models: {
        'agent-model': {
          owned_by: 'openai',
          pricing: { input_per_mtok: 1, output_per_mtok: 2 },
          context_window: 400_000,
          max_output_tokens: 128_000,
          routes: [{ provider: 'mock', model: 'agent-model' }],
        },
      },
    },
    'test',
  ).get('agent-model')!;
  const ask = (key: KeyRecord, promptTokens: number, nowMs: number, outputLimit?: number) => ({
    requestId: `r${Math.random().toString(36).slice(2)}`,
    key,
    model: agentModel,
    startedAtMs: nowMs,
    promptTokens,
    outputLimit,
    n: 1,
    stream: true,
  });
  const used = (prompt: number, completion: number) => ok({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

  it('gives an agent’s sequential turns a share of what is left, never a 429 while the minute has room', async () => {
    const { stores, tables, key, accountId } = await setup({ rpm: 60, tpm: 100_000 });
    let now = 5_000 * 60_000 + 5_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const outputs: number[] = [];
    for (let turn = 0; turn < 4; turn++) {
      const prompt = 10_000 + turn * 500;
      const admitted = await admission.admit(ask(key, prompt, now));
      outputs.push(admitted.outputTokens);
      // Counted at admission: the prompt and the fitted limit, within the minute's 100,000.
      expect((await stores.accounts.get(accountId))!.counts.tokens).toBeLessThanOrEqual(100_000);
      await admitted.settle(used(prompt, 200));
      now += 2_000;
    }
    // Half of what the minute left after the prompt, never the model's 128,000 nor a wait.
    expect(outputs[0]).toBe(Math.floor((100_000 - 10_000) / 2));
    for (const out of outputs) expect(out).toBeGreaterThan(20_000);
    expect((await stores.accounts.get(accountId))!.counts.tokens).toBe(4 * 10_000 + 500 * 6 + 4 * 200);
  });

  it('lowers a client’s own limit to what is left, down to the floor of 1,024, then tells when the floor frees (at most 60 s)', async () => {
    const { stores, tables, key } = await setup({ rpm: 60, tpm: 20_000 });
    const now = 6_000 * 60_000 + 10_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const first = await admission.admit(ask(key, 12_000, now, 32_000));
    expect(first.outputTokens).toBe(4_000); // half of the 8,000 left after the prompt
    const second = await admission.admit(ask(key, 2_000, now, 32_000));
    expect(second.outputTokens).toBe(1_024); // 2,000 left after its prompt: half is below the floor
    const err = (await admission.admit(ask(key, 2_000, now, 32_000)).catch((e) => e)) as GatewayError;
    expect(err.status).toBe(429);
    expect(err.type).toBe('rate_limit_exceeded');
    expect(err.message).toMatch(/needs at least 3024 \(2000 in the prompt and 1024 of output\)/);
    expect(Number(err.headers['retry-after-ms'])).toBeGreaterThan(0);
    expect(Number(err.headers['retry-after-ms'])).toBeLessThanOrEqual(60_000);
    expect(Number(err.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(err.headers['x-ratelimit-reset-tokens']).toMatch(/^(\d+(\.\d+)?s|\d+ms|1m0s)$/);
    // The first turn used little: its settlement gives the minute back, and the floor fits again.
    await first.settle(used(12_000, 100));
    const third = await admission.admit(ask(key, 2_000, now, 32_000));
    expect(third.outputTokens).toBeGreaterThanOrEqual(1_024);
  });

  it('shares the minute between concurrent requests: each admitted one gets at least the floor, and the counted total stays within the limit', async () => {
    const { stores, tables, key, accountId } = await setup({ rpm: 1_000, tpm: 100_000 });
    const now = 7_000 * 60_000 + 1_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const results = await Promise.all(Array.from({ length: 12 }, () => admission.admit(ask(key, 5_000, now)).catch((e: GatewayError) => e)));
    const admitted = results.filter((r): r is Exclude<typeof r, GatewayError> => !(r instanceof GatewayError));
    const refused = results.filter((r): r is GatewayError => r instanceof GatewayError);
    // Each takes half of what the one before left: 47,500, 21,250, 8,125, then the floor's share.
    expect(admitted.length).toBeGreaterThanOrEqual(4);
    for (const a of admitted) expect(a.outputTokens).toBeGreaterThanOrEqual(1_024);
    for (const e of refused) {
      expect(e.status).toBe(429);
      expect(Number(e.headers['retry-after-ms'])).toBeLessThanOrEqual(60_000);
    }
    const counted = (await stores.accounts.get(accountId))!.counts.tokens;
    expect(counted).toBeLessThanOrEqual(100_000);
    expect(counted).toBe(admitted.reduce((s, a) => s + 5_000 + a.outputTokens, 0));
    // Those that waited are not starved for the minute: the answers' settlements give back what they did not use.
    await Promise.all(admitted.map((a) => a.settle(used(5_000, 100))));
    const retried = await Promise.all(refused.map(() => admission.admit(ask(key, 5_000, now)).catch((e: GatewayError) => e)));
    const later = retried.filter((r) => !(r instanceof GatewayError)) as Array<Exclude<(typeof retried)[number], GatewayError>>;
    expect(later.length).toBeGreaterThanOrEqual(3);
    for (const a of later) expect(a.outputTokens).toBeGreaterThanOrEqual(1_024);
    expect((await stores.accounts.get(accountId))!.counts.tokens).toBeLessThanOrEqual(100_000);
  });

  it('refuses with 400, no retry-after, a prompt that no minute of the account or the key can take, and one above the model’s context', async () => {
    const { stores, tables, key } = await setup({ rpm: 10, tpm: 20_000 });
    const now = 8_000 * 60_000 + 1_000;
    const admission = moneyOver(stores, tables, () => now).admission;
    const err = (await admission.admit(ask(key, 27_000, now, 32_000)).catch((e) => e)) as GatewayError;
    expect({ status: err.status, type: err.type, code: err.code }).toEqual({ status: 400, type: 'invalid_request_error', code: 'request_too_large' });
    expect(err.message).toMatch(/27001 tokens \(27000 in the prompt and at least 1 of output\).*limit of the account is 20000 tokens per minute/);
    expect(err.headers['retry-after']).toBeUndefined();
    const capped: KeyRecord = { ...key, keyHash: `${key.keyHash}_t`, keyId: `${key.keyId}_t`, tpm: 5_000 };
    await stores.keys.create(capped);
    const keyErr = (await admission.admit(ask(capped, 6_000, now)).catch((e) => e)) as GatewayError;
    expect(keyErr.status).toBe(400);
    expect(keyErr.message).toMatch(/limit of this key is 5000 tokens per minute/);
    const context = (await admission.admit(ask(key, 400_001, now)).catch((e) => e)) as GatewayError;
    expect({ status: context.status, code: context.code }).toEqual({ status: 400, code: 'context_length_exceeded' });
    // Nothing was counted for any of them.
    expect((await stores.accounts.get(key.accountId))!.counts.tokens).toBe(0);
  });

  it('counts the next turn after the last one’s settlement still under way on this instance', async () => {
    const { stores, tables, key } = await setup({ rpm: 60, tpm: 100_000 });
    const now = 9_000 * 60_000 + 1_000;
    // Settlements that take 300 ms to land, as a slow store would.
    const slow = { settle: async (...args: Parameters<typeof stores.accounts.settle>) => (await new Promise((r) => setTimeout(r, 300)), stores.accounts.settle(...args)) };
    const { CreditAdmission } = await import('../../lambda/money/admission');
    const { Settlements } = await import('../../lambda/money/settlement');
    const { TierCache } = await import('../../lambda/money/tier-cache');
    const admission = new CreditAdmission({
      store: stores.accounts,
      tiers: new TierCache(stores.tiers, 60_000, () => now),
      settlements: new Settlements({ store: slow, retryDelaysMs: [10], now: () => now }),
      keysTable: tables.keys,
      maxRequestMs: 900_000,
      now: () => now,
    });
    const first = await admission.admit(ask(key, 30_000, now));
    expect(first.outputTokens).toBe(35_000);
    // The answer's last byte is out; its settlement is on its way (not awaited) when the next turn comes.
    void first.settle(used(30_000, 500));
    const next = await admission.admit(ask(key, 30_600, now));
    // Against the true 30,500, not the 65,000 held: half of 100,000 − 30,500 − 30,600.
    expect(next.outputTokens).toBe(Math.floor((100_000 - 30_500 - 30_600) / 2));
  });
});
