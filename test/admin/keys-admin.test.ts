import { MAX_KEYS_PER_ACCOUNT } from '../../lambda/store/keys';
import { createAdminHarness, type AdminHarness } from '../support/admin-harness';

/** The admin API's key fields of issue 21: rename, disable/enable, monthly spend cap, names, the keys-per-account limit. */

let h: AdminHarness;
beforeAll(async () => {
  h = await createAdminHarness();
});
afterAll(async () => {
  await h.close();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await h.app.request(path, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: await res.json() };
}

const account = async () => {
  const id = `ka_${Math.random().toString(36).slice(2)}`;
  expect((await call('POST', '/accounts', { id, tier: 'free', credits_usd: 1 })).status).toBe(201);
  return id;
};

test('a key is created with a monthly spend cap, renamed, disabled and enabled, and its cap changed or removed', async () => {
  const id = await account();
  const created = await call('POST', '/keys', { account_id: id, name: 'ci', monthly_spend_cap_usd: '1.10' });
  expect(created.status).toBe(201);
  expect(created.json).toMatchObject({ monthly_spend_cap_usd: 1.1, monthly_spend_cap_micro_usd: 1_100_000, last_used_at: null, spend: { last_30_days_micro_usd: 0, this_month_micro_usd: 0 } });
  const keyId = created.json.id;

  const renamed = await call('PATCH', `/keys/${keyId}`, { name: 'ci-2', status: 'disabled', monthly_spend_cap_usd: 5 });
  expect(renamed.status).toBe(200);
  expect(renamed.json).toMatchObject({ name: 'ci-2', status: 'disabled', monthly_spend_cap_micro_usd: 5_000_000 });
  await expect(h.auth.authenticate(`Bearer ${created.json.key}`)).rejects.toMatchObject({ status: 401, message: expect.stringContaining('disabled') });

  const enabled = await call('PATCH', `/keys/${keyId}`, { status: 'active', monthly_spend_cap_usd: null });
  expect(enabled.json).toMatchObject({ status: 'active', monthly_spend_cap_usd: null });
  await expect(h.auth.authenticate(`Bearer ${created.json.key}`)).resolves.toMatchObject({ keyId, status: 'active' });
  expect((await call('GET', `/keys/${keyId}`)).json).toMatchObject({ id: keyId, name: 'ci-2' });
  expect((await call('GET', `/accounts/${id}/keys`)).json.data[0]).toMatchObject({ id: keyId, last_used_at: null, spend: { this_month_micro_usd: 0 } });

  // A revoked key changes no more; unknown fields and values are refused.
  expect((await call('DELETE', `/keys/${keyId}`)).status).toBe(200);
  expect((await call('PATCH', `/keys/${keyId}`, { status: 'active' })).status).toBe(404);
  expect((await call('PATCH', `/keys/${keyId}`, { status: 'revoked' })).status).toBe(400);
});

test.each([
  ['a line break', 'a\nb'],
  ['a right-to-left override', 'invoice\u202etxt.exe'],
  ['a first-strong isolate', '\u2068x'],
  ['a control character', 'a\u0007'],
])('a key name with %s is refused, at creation and on rename', async (_what, name) => {
  const id = await account();
  const created = await call('POST', '/keys', { account_id: id, name });
  expect(created.status).toBe(400);
  expect(created.json.error).toMatchObject({ param: 'name', message: expect.stringContaining('printable') });
  const ok = await call('POST', '/keys', { account_id: id, name: 'Ünïcode ✓ name' });
  expect(ok.status).toBe(201);
  expect((await call('PATCH', `/keys/${ok.json.id}`, { name })).status).toBe(400);
});

test('a spend cap must be a positive amount of dollars', async () => {
  const id = await account();
  for (const cap of [0, -1, '1.0000001', 'ten']) {
    const res = await call('POST', '/keys', { account_id: id, monthly_spend_cap_usd: cap });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('monthly_spend_cap_usd');
  }
});

test(`an account holds at most ${MAX_KEYS_PER_ACCOUNT} keys, however many are asked for at once; revoking frees a place`, async () => {
  const id = await account();
  const results = await Promise.all(Array.from({ length: MAX_KEYS_PER_ACCOUNT + 10 }, () => call('POST', '/keys', { account_id: id })));
  const created = results.filter((r) => r.status === 201);
  expect(created).toHaveLength(MAX_KEYS_PER_ACCOUNT);
  const refused = results.filter((r) => r.status !== 201);
  expect(refused.every((r) => r.status === 409 && r.json.error.code === 'too_many_keys')).toBe(true);
  expect(refused[0].json.error.message).toContain(String(MAX_KEYS_PER_ACCOUNT));
  await call('DELETE', `/keys/${created[0].json.id}`);
  expect((await call('POST', '/keys', { account_id: id })).status).toBe(201);
  expect((await call('POST', '/keys', { account_id: id })).status).toBe(409);
}, 60_000);
