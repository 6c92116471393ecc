import { createAdminApp } from '../../lambda/admin/app';
import { hashApiKey } from '../../lambda/auth/api-key';
import { loadCatalog } from '../../lambda/catalog';
import { redeemSignInLink } from '../../lambda/auth/sign-in';
import { GatewayError } from '../../lambda/contract/errors';
import { ledgerToItem, type LedgerEntry } from '../../lambda/store/usage';
import { createAdminHarness, type AdminHarness } from '../support/admin-harness';

let h: AdminHarness;

beforeAll(async () => {
  h = await createAdminHarness();
});
afterAll(async () => {
  await h.close();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await h.app.request(path, init);
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

function expectError(res: { status: number; json: any }, status: number, param: string | null, code?: string) {
  expect(res.status).toBe(status);
  expect(Object.keys(res.json)).toEqual(['error']);
  expect(Object.keys(res.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof res.json.error.message).toBe('string');
  expect(res.json.error.param).toBe(param);
  if (code) expect(res.json.error.code).toBe(code);
}

let seq = 0;
const uniqueId = (p: string) => `${p}-${Date.now().toString(36)}-${seq++}`;

describe('accounts', () => {
  test('POST /accounts creates the account with initial credits through the ledger', async () => {
    const id = uniqueId('acme');
    const res = await call('POST', '/accounts', { id, name: 'Acme', tier: 'starter', credits_usd: 10.25 });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({
      object: 'account',
      id,
      name: 'Acme',
      tier: 'starter',
      status: 'active',
      balance_micro_usd: 10_250_000,
      balance_usd: 10.25,
      rpm: null,
      tpm: null,
      limits: { rpm: 60, tpm: 100_000 },
      usage_this_minute: { requests: 0, tokens: 0, remaining_requests: 60, remaining_tokens: 100_000 },
    });
    expect(Number.isInteger(res.json.balance_micro_usd)).toBe(true);
    expect(res.json.created_at).toBe(Math.floor(h.clock.now / 1000));

    const ledger = await h.stores.usage.all(id);
    expect(ledger).toEqual([expect.objectContaining({ kind: 'topup', id: 'initial', amountMicroUsd: 10_250_000 })]);

    const got = await call('GET', `/accounts/${id}`);
    expect(got.status).toBe(200);
    expect(got.json).toEqual(res.json);
  });

  test('POST /accounts generates an id, defaults the name, takes custom limits and zero credits', async () => {
    const res = await call('POST', '/accounts', { tier: 'enterprise', rpm: 1000, tpm: 0 });
    expect(res.status).toBe(201);
    expect(res.json.id).toMatch(/^acct_[0-9a-f]{24}$/);
    expect(res.json.name).toBe(res.json.id);
    expect(res.json).toMatchObject({ balance_micro_usd: 0, rpm: 1000, tpm: 0, limits: { rpm: 1000, tpm: 0 } });
    expect(res.json.usage_this_minute.remaining_tokens).toBeNull();
    expect(await h.stores.usage.all(res.json.id)).toEqual([]);
  });

  test('an existing account id is 409', async () => {
    const id = uniqueId('dup');
    expect((await call('POST', '/accounts', { id, tier: 'free' })).status).toBe(201);
    const again = await call('POST', '/accounts', { id, tier: 'pro', credits_usd: 5 });
    expectError(again, 409, 'id', 'account_exists');
    const account = await h.stores.accounts.get(id);
    expect(account).toMatchObject({ tier: 'free', balanceMicroUsd: 0 });
  });

  test('validation errors name the parameter', async () => {
    expectError(await call('POST', '/accounts', {}), 400, 'tier', 'missing_required_parameter');
    expectError(await call('POST', '/accounts', { tier: 'gold' }), 400, 'tier', 'tier_not_found');
    expectError(await call('POST', '/accounts', { tier: 'free', credits_usd: -1 }), 400, 'credits_usd');
    expectError(await call('POST', '/accounts', { tier: 'free', credits_usd: 0.0000001 }), 400, 'credits_usd');
    expectError(await call('POST', '/accounts', { tier: 'free', rpm: 1.5 }), 400, 'rpm');
    expectError(await call('POST', '/accounts', { tier: 'free', tpm: -3 }), 400, 'tpm');
    expectError(await call('POST', '/accounts', { tier: 'free', id: 'has space' }), 400, 'id');
    expectError(await call('POST', '/accounts', { tier: 'free', credit_usd: 5 }), 400, 'credit_usd', 'unknown_parameter');
    expectError(await call('POST', '/accounts', '{"tier":'), 400, null, 'invalid_json');
    expectError(await call('POST', '/accounts', '[1]'), 400, null);
    expectError(await call('POST', '/accounts'), 400, null, 'invalid_json');
  });

  test('unknown account is 404 not_found', async () => {
    expectError(await call('GET', '/accounts/nope-404'), 404, null, 'not_found');
    expectError(await call('GET', '/accounts/nope-404/keys'), 404, null, 'not_found');
    expectError(await call('GET', '/accounts/nope-404/usage'), 404, null, 'not_found');
    expectError(await call('POST', '/accounts/nope-404/credits', { amount_usd: 1, reference: 'r1' }), 404, null, 'not_found');
  });
});

describe('credits', () => {
  test('the same reference twice adds once, and the ledger holds one top-up', async () => {
    const id = uniqueId('topup');
    await call('POST', '/accounts', { id, tier: 'free' });
    const first = await call('POST', `/accounts/${id}/credits`, { amount_usd: 5, reference: 'inv-001' });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ object: 'account', id, balance_micro_usd: 5_000_000, top_up: { reference: 'inv-001', result: 'added' } });
    const second = await call('POST', `/accounts/${id}/credits`, { amount_usd: 5, reference: 'inv-001' });
    expect(second.status).toBe(200);
    expect(second.json).toMatchObject({ balance_micro_usd: 5_000_000, top_up: { result: 'duplicate' } });
    const third = await call('POST', `/accounts/${id}/credits`, { amount_usd: '0.1', reference: 'inv-002' });
    expect(third.json.balance_micro_usd).toBe(5_100_000);

    const topUps = await h.stores.usage.topUps(id);
    expect(topUps.map((t) => [t.id, t.amountMicroUsd]).sort()).toEqual([
      ['inv-001', 5_000_000],
      ['inv-002', 100_000],
    ]);
    const ledgerSum = (await h.stores.usage.all(id)).reduce((s, e) => s + e.amountMicroUsd, 0);
    expect(ledgerSum).toBe((await h.stores.accounts.get(id))!.balanceMicroUsd);
  });

  test('amounts convert exactly to integer micro-USD', async () => {
    const id = uniqueId('exact');
    await call('POST', '/accounts', { id, tier: 'free' });
    const amounts = [0.1, 0.2, 0.3, 1.000001, '19.99', 1e-6];
    let expected = 0;
    for (const [i, amount] of amounts.entries()) {
      const res = await call('POST', `/accounts/${id}/credits`, { amount_usd: amount, reference: `r${i}` });
      expect(res.status).toBe(200);
    }
    expected = 100_000 + 200_000 + 300_000 + 1_000_001 + 19_990_000 + 1;
    expect((await h.stores.accounts.get(id))!.balanceMicroUsd).toBe(expected);
  });

  test('bad amounts and references are 400 with param', async () => {
    const id = uniqueId('bad');
    await call('POST', '/accounts', { id, tier: 'free' });
    const path = `/accounts/${id}/credits`;
    expectError(await call('POST', path, { amount_usd: 0, reference: 'x' }), 400, 'amount_usd');
    expectError(await call('POST', path, { amount_usd: -5, reference: 'x' }), 400, 'amount_usd');
    expectError(await call('POST', path, { amount_usd: 1.0000001, reference: 'x' }), 400, 'amount_usd');
    expectError(await call('POST', path, { amount_usd: '1.2345678', reference: 'x' }), 400, 'amount_usd');
    expectError(await call('POST', path, { amount_usd: 'ten', reference: 'x' }), 400, 'amount_usd');
    expectError(await call('POST', path, { amount_usd: 1e300, reference: 'x' }), 400, 'amount_usd');
    expectError(await call('POST', path, '{"amount_usd": 1e999, "reference": "x"}'), 400, 'amount_usd');
    expectError(await call('POST', path, { amount_usd: 1 }), 400, 'reference', 'missing_required_parameter');
    expectError(await call('POST', path, { amount_usd: 1, reference: '' }), 400, 'reference');
    expectError(await call('POST', path, { reference: 'x' }), 400, 'amount_usd', 'missing_required_parameter');
    expect((await h.stores.accounts.get(id))!.balanceMicroUsd).toBe(0);
    expect(await h.stores.usage.all(id)).toEqual([]);
  });
});

describe('keys', () => {
  test('create shows the key once, stores only its SHA-256, lists without secrets, revoke stops it at once', async () => {
    const id = uniqueId('keys');
    await call('POST', '/accounts', { id, tier: 'pro', rpm: 500 });
    const created = await call('POST', '/keys', { account_id: id, name: 'ci', models: ['gpt-4o-mini'], rpm: 50, tpm: 1000 });
    expect(created.status).toBe(201);
    const key: string = created.json.key;
    expect(key).toMatch(/^it_[0-9A-Za-z]{40}$/);
    expect(created.json).toMatchObject({
      object: 'api_key',
      account_id: id,
      name: 'ci',
      status: 'active',
      models: ['gpt-4o-mini'],
      rpm: 50,
      tpm: 1000,
      expires_at: null,
    });
    expect(created.json.id).toMatch(/^key_[0-9a-f]{24}$/);
    expect(created.json.prefix).toBe(`${key.slice(0, 6)}…${key.slice(-4)}`);

    // The key record carries the account's tier and custom limits for admission.
    const stored = await h.stores.keys.getByHash(hashApiKey(key));
    expect(stored).toMatchObject({ accountTier: 'pro', accountRpm: 500, keyId: created.json.id });
    expect(stored!.accountTpm).toBeUndefined();

    // Only the hash is in the table: no item holds the plaintext or any `it_` secret.
    const scan = await h.client.call('Scan', { TableName: h.tables.keys });
    const dump = JSON.stringify(scan.Items);
    expect(dump).not.toContain(key);
    expect(dump).not.toContain(key.slice(3));
    expect(dump).not.toMatch(/it_[0-9A-Za-z]{20,}/);
    expect(dump).toContain(hashApiKey(key));

    const second = await call('POST', '/keys', { account_id: id });
    expect(second.status).toBe(201);
    expect(second.json).toMatchObject({ name: '', models: null, rpm: null, tpm: null });

    const list = await call('GET', `/accounts/${id}/keys`);
    expect(list.status).toBe(200);
    expect(list.json.object).toBe('list');
    expect(list.json.data.map((k: any) => k.id).sort()).toEqual([created.json.id, second.json.id].sort());
    const listText = JSON.stringify(list.json);
    expect(listText).not.toContain(key);
    expect(listText).not.toContain(second.json.key);
    expect(listText).not.toContain(hashApiKey(key));
    for (const k of list.json.data) {
      expect(k).not.toHaveProperty('key');
      expect(k).not.toHaveProperty('key_hash');
      expect(k).not.toHaveProperty('keyHash');
    }

    // The key works, then revocation stops it on this instance at once (cache forgotten).
    await expect(h.auth.authenticate(`Bearer ${key}`)).resolves.toMatchObject({ keyId: created.json.id });
    const revoked = await call('DELETE', `/keys/${created.json.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.json).toMatchObject({ object: 'api_key', id: created.json.id, status: 'revoked' });
    expect(revoked.json).not.toHaveProperty('key');
    const err = await h.auth.authenticate(`Bearer ${key}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(401);
    // The other key still works.
    await expect(h.auth.authenticate(`Bearer ${second.json.key}`)).resolves.toMatchObject({ keyId: second.json.id });

    const after = await call('GET', `/accounts/${id}/keys`);
    expect(after.json.data.find((k: any) => k.id === created.json.id).status).toBe('revoked');
  });

  test('expires_at accepts ISO and unix seconds, and the key stops at expiry', async () => {
    const id = uniqueId('exp');
    await call('POST', '/accounts', { id, tier: 'free' });
    const inAnHour = h.clock.now + 3600_000;
    const iso = await call('POST', '/keys', { account_id: id, expires_at: new Date(inAnHour).toISOString() });
    expect(iso.status).toBe(201);
    expect(iso.json.expires_at).toBe(Math.floor(inAnHour / 1000));
    const secs = await call('POST', '/keys', { account_id: id, expires_at: Math.floor(inAnHour / 1000) });
    expect(secs.json.expires_at).toBe(Math.floor(inAnHour / 1000));

    await expect(h.auth.authenticate(`Bearer ${iso.json.key}`)).resolves.toBeDefined();
    const saved = h.clock.now;
    h.clock.now = inAnHour + 1;
    try {
      await expect(h.auth.authenticate(`Bearer ${iso.json.key}`)).rejects.toMatchObject({ status: 401 });
    } finally {
      h.clock.now = saved;
    }
  });

  test('key validation and 404s', async () => {
    const id = uniqueId('kv');
    await call('POST', '/accounts', { id, tier: 'free' });
    expectError(await call('POST', '/keys', {}), 400, 'account_id', 'missing_required_parameter');
    expectError(await call('POST', '/keys', { account_id: 'missing-acct' }), 404, 'account_id', 'not_found');
    expectError(await call('POST', '/keys', { account_id: id, models: ['gpt-4o', 'gpt-9'] }), 400, 'models[1]', 'model_not_found');
    expectError(await call('POST', '/keys', { account_id: id, models: ['gpt-4o', 7] }), 400, 'models[1]');
    expectError(await call('POST', '/keys', { account_id: id, models: [] }), 400, 'models');
    expectError(await call('POST', '/keys', { account_id: id, expires_at: 'tomorrow' }), 400, 'expires_at');
    expectError(await call('POST', '/keys', { account_id: id, expires_at: '2001-01-01T00:00:00Z' }), 400, 'expires_at');
    expectError(await call('POST', '/keys', { account_id: id, rpm: 0 }), 400, 'rpm');
    expectError(await call('POST', '/keys', { account_id: id, key: 'it_choose_my_own' }), 400, 'key', 'unknown_parameter');
    expectError(await call('DELETE', '/keys/key_does_not_exist'), 404, null, 'not_found');
    expect((await call('GET', `/accounts/${id}/keys`)).json.data).toEqual([]);
  });
});

describe('tiers', () => {
  test('GET /tiers lists the seeded tiers', async () => {
    const res = await call('GET', '/tiers');
    expect(res.status).toBe(200);
    expect(res.json.object).toBe('list');
    const byId = Object.fromEntries(res.json.data.map((t: any) => [t.id, t]));
    expect(byId.free).toMatchObject({ object: 'tier', rpm: 10, tpm: 20_000, models: null });
    expect(byId.starter).toMatchObject({ rpm: 60, tpm: 100_000 });
    expect(byId.pro).toMatchObject({ rpm: 300, tpm: 500_000 });
    expect(byId.enterprise).toMatchObject({ rpm: 0, tpm: 0 });
    expectError(await call('GET', '/tiers/platinum'), 404, null, 'not_found');
  });

  test('PUT /tiers/{id} updates the table and the tier cache, keeps the description unless given', async () => {
    await h.tierCache.ready();
    const res = await call('PUT', '/tiers/starter', { rpm: 120, tpm: 200_000, models: ['gpt-4o-mini', 'deepseek-chat'] });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      object: 'tier',
      id: 'starter',
      rpm: 120,
      tpm: 200_000,
      models: ['gpt-4o-mini', 'deepseek-chat'],
      description: expect.stringContaining('Starter'),
    });
    expect(await h.stores.tiers.get('starter')).toMatchObject({ rpm: 120, tpm: 200_000, models: ['gpt-4o-mini', 'deepseek-chat'] });
    expect(h.tierCache.get('starter')).toMatchObject({ rpm: 120, tpm: 200_000 });
    expect((await call('GET', '/tiers/starter')).json).toEqual(res.json);

    // Omitted models stay; null clears them; a new id creates a tier.
    expect((await call('PUT', '/tiers/starter', { rpm: 60, tpm: 100_000 })).json.models).toEqual(['gpt-4o-mini', 'deepseek-chat']);
    expect((await call('PUT', '/tiers/starter', { rpm: 60, tpm: 100_000, models: null })).json.models).toBeNull();
    const created = await call('PUT', '/tiers/team', { rpm: 30, tpm: 50_000, description: 'Team' });
    expect(created.json).toEqual({ object: 'tier', id: 'team', rpm: 30, tpm: 50_000, models: null, description: 'Team' });

    // Accounts on the tier see the new limits.
    const id = uniqueId('onteam');
    const acct = await call('POST', '/accounts', { id, tier: 'team' });
    expect(acct.json.limits).toEqual({ rpm: 30, tpm: 50_000 });
    await call('PUT', '/tiers/team', { rpm: 40, tpm: 60_000 });
    expect((await call('GET', `/accounts/${id}`)).json.limits).toEqual({ rpm: 40, tpm: 60_000 });
  });

  test('tier validation', async () => {
    expectError(await call('PUT', '/tiers/free', { rpm: 10 }), 400, 'tpm', 'missing_required_parameter');
    expectError(await call('PUT', '/tiers/free', { rpm: -1, tpm: 1 }), 400, 'rpm');
    expectError(await call('PUT', '/tiers/free', { rpm: 1, tpm: '5' }), 400, 'tpm');
    expectError(await call('PUT', '/tiers/free', { rpm: 1, tpm: 1, models: ['nope'] }), 400, 'models[0]', 'model_not_found');
    expect(await h.stores.tiers.get('free')).toMatchObject({ rpm: 10, tpm: 20_000 });
  });
});

describe('usage', () => {
  test('items and totals in a time range; default is the last 30 days', async () => {
    const id = uniqueId('usage');
    await call('POST', '/accounts', { id, tier: 'free', credits_usd: 3 });
    const t0 = h.clock.now;
    const request = (n: number, atMs: number, extra: Partial<LedgerEntry> = {}): LedgerEntry => ({
      accountId: id,
      kind: 'request',
      atMs,
      id: `req_${n}`,
      amountMicroUsd: -1000 * n,
      keyId: 'key_x',
      model: 'gpt-4o-mini',
      route: 'mock:gpt-4o-mini',
      status: 'completed',
      httpStatus: 200,
      promptTokens: 10 * n,
      completionTokens: 5 * n,
      holdMicroUsd: 5000 * n,
      latencyMs: 12,
      stream: n % 2 === 0,
      ...extra,
    });
    const entries = [
      request(1, t0 - 1000),
      request(2, t0 - 2000),
      request(3, t0 - 40 * 24 * 3600 * 1000), // outside the default window
      request(4, t0 - 500, { status: 'failed', httpStatus: 502, amountMicroUsd: 0, completionTokens: 0, errorCode: 'upstream_error' }),
    ];
    for (const e of entries) await h.client.call('PutItem', { TableName: h.tables.usage, Item: ledgerToItem(e) });

    const res = await call('GET', `/accounts/${id}/usage`);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: 'usage', account_id: id, to: new Date(t0).toISOString() });
    expect(res.json.from).toBe(new Date(t0 - 30 * 24 * 3600 * 1000).toISOString());
    expect(res.json.items.map((i: any) => i.kind === 'topup' ? `topup:${i.reference}` : i.id)).toEqual(['req_2', 'req_1', 'req_4', 'topup:initial']);
    expect(res.json.items[0]).toMatchObject({
      kind: 'request',
      id: 'req_2',
      at_ms: t0 - 2000,
      key_id: 'key_x',
      model: 'gpt-4o-mini',
      status: 'completed',
      http_status: 200,
      prompt_tokens: 20,
      completion_tokens: 10,
      cost_micro_usd: 2000,
      hold_micro_usd: 10_000,
      stream: true,
    });
    expect(res.json.items[3]).toMatchObject({ kind: 'topup', reference: 'initial', amount_micro_usd: 3_000_000 });
    expect(res.json.totals).toEqual({
      requests: 3,
      failed_requests: 1,
      prompt_tokens: 10 + 20 + 40,
      completion_tokens: 5 + 10,
      total_tokens: 85,
      cached_tokens: 0,
      cost_micro_usd: 3000,
      cost_usd: 0.003,
      uncharged_micro_usd: 0,
      top_ups: 1,
      top_up_micro_usd: 3_000_000,
      top_up_usd: 3,
      reversals: 0,
      reversal_micro_usd: 0,
      reversal_owed_micro_usd: 0,
      owed_paid_micro_usd: 0,
    });

    // Explicit range in ms and ISO: only the old request.
    const from = t0 - 41 * 24 * 3600 * 1000;
    const to = new Date(t0 - 39 * 24 * 3600 * 1000).toISOString();
    const old = await call('GET', `/accounts/${id}/usage?from=${from}&to=${encodeURIComponent(to)}`);
    expect(old.status).toBe(200);
    expect(old.json.items.map((i: any) => i.id)).toEqual(['req_3']);
    expect(old.json.totals).toMatchObject({ requests: 1, cost_micro_usd: 3000, top_ups: 0, top_up_micro_usd: 0 });
  });

  test('bad ranges are 400 with param', async () => {
    const id = uniqueId('ur');
    await call('POST', '/accounts', { id, tier: 'free' });
    expectError(await call('GET', `/accounts/${id}/usage?from=yesterday`), 400, 'from');
    expectError(await call('GET', `/accounts/${id}/usage?to=soon`), 400, 'to');
    expectError(await call('GET', `/accounts/${id}/usage?from=2000&to=1000`), 400, 'from');
  });
});

describe('console links', () => {
  test('POST /accounts/{id}/console-links: 201 with a one-time URL on the console beside the admin API, valid 15 minutes', async () => {
    const id = uniqueId('cl');
    await call('POST', '/accounts', { id, tier: 'free' });
    const res = await call('POST', `/accounts/${id}/console-links`);
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ object: 'console_link', account_id: id, url: expect.stringMatching(/^http:\/\/localhost\/console\/sign-in#[A-Za-z0-9_-]{43}$/), expires_at: Math.floor(h.clock.now / 1000) + 900 });
    const grant = await redeemSignInLink(h.stores.sessions, new URL(res.json.url).hash.slice(1), h.clock.now);
    expect(grant).toMatchObject({ accountId: id, method: 'link' });
    expectError(await call('POST', '/accounts/nobody-at-all/console-links'), 404, null, 'not_found');
    expectError(await call('GET', `/accounts/${id}/console-links`), 405, null, 'method_not_allowed');
  });

  test('with consoleUrl set (AWS: the chat function URL), links point there', async () => {
    const id = uniqueId('cl');
    await call('POST', '/accounts', { id, tier: 'free' });
    const app = createAdminApp({ ...h.stores, tierCache: h.tierCache, auth: h.auth, catalog: loadCatalog({}), consoleUrl: 'https://abc.lambda-url.eu-west-1.on.aws/console' });
    const res = await app.request(`/accounts/${id}/console-links`, { method: 'POST' });
    expect(res.status).toBe(201);
    expect((await res.json()).url).toMatch(/^https:\/\/abc\.lambda-url\.eu-west-1\.on\.aws\/console\/sign-in#/);
  });
});

describe('routing', () => {
  test('unknown routes are 404 and wrong methods 405, in the OpenAI error shape', async () => {
    expectError(await call('GET', '/nothing-here'), 404, null, 'not_found');
    expectError(await call('PATCH', '/tiers/free', { rpm: 1 }), 405, null, 'method_not_allowed');
    expectError(await call('GET', '/keys'), 405, null, 'method_not_allowed');
  });

  test('non-JSON content types are refused', async () => {
    const res = await h.app.request('/accounts', { method: 'POST', body: 'tier=free', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(415);
    expect((await res.json()).error.code).toBe('unsupported_content_type');
  });
});
