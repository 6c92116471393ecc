import { startTestGateway, type TestGateway } from '../support/gateway';

/** PATCH /admin/accounts/{id}, through the local gateway: the next request sees the change. */
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(() => gw.stop());

const admin = (method: string, path: string, body?: unknown) =>
  fetch(`${gw.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${gw.adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const chat = (key: string) =>
  fetch(`${gw.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
  });

it('changes tier, limits and status, and the next request sees each change', async () => {
  expect((await admin('POST', '/accounts', { id: 'upd', tier: 'free', credits_usd: 5 })).status).toBe(201);
  const { key } = await (await admin('POST', '/keys', { account_id: 'upd' })).json();
  const first = await chat(key);
  expect(first.status).toBe(200);
  expect(first.headers.get('x-ratelimit-limit-requests')).toBe('10');

  const promoted = await admin('PATCH', '/accounts/upd', { tier: 'pro' });
  expect(promoted.status).toBe(200);
  expect((await promoted.json()).tier).toBe('pro');
  expect((await chat(key)).headers.get('x-ratelimit-limit-requests')).toBe('300');

  await admin('PATCH', '/accounts/upd', { rpm: 3 });
  const capped = await chat(key);
  expect(capped.headers.get('x-ratelimit-limit-requests')).toBe('3');
  expect((await chat(key)).status).toBe(429);

  await admin('PATCH', '/accounts/upd', { rpm: null, status: 'disabled' });
  // A 429 may be answered from the account as seen in the last second, without a write.
  await new Promise((r) => setTimeout(r, 1_100));
  const disabled = await chat(key);
  expect(disabled.status).toBe(403);
  expect((await disabled.json()).error.code).toBe('account_disabled');

  await admin('PATCH', '/accounts/upd', { status: 'active' });
  const back = await chat(key);
  expect(back.status).toBe(200);
  expect(back.headers.get('x-ratelimit-limit-requests')).toBe('300');
});

it('refuses an unknown tier, an unknown account and unknown fields', async () => {
  await admin('POST', '/accounts', { id: 'upd2', tier: 'free' });
  const badTier = await admin('PATCH', '/accounts/upd2', { tier: 'gold' });
  expect(badTier.status).toBe(400);
  expect((await badTier.json()).error.param).toBe('tier');
  expect((await admin('PATCH', '/accounts/nobody', { tier: 'pro' })).status).toBe(404);
  const unknown = await admin('PATCH', '/accounts/upd2', { balance: 100 });
  expect(unknown.status).toBe(400);
  expect((await unknown.json()).error.code).toBe('unknown_parameter');
});
