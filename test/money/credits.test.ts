import type { CatalogFile } from '../../lambda/catalog';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { completionBody, startUpstream } from '../support/upstream';

/** Output at $1,000 per million tokens: 1,000 µUSD a token, input free, so a hold is exact. */
const PRICED: CatalogFile = {
  models: {
    priced: {
      owned_by: 'test',
      pricing: { input_per_mtok: 0, output_per_mtok: 1000 },
      context_window: 1000,
      max_output_tokens: 100,
      routes: [{ provider: 'mock', model: 'priced' }],
    },
  },
};
const PER_REQUEST_MICRO_USD = 5 * 1000;

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ catalog: catalogOf(PRICED) });
});

afterAll(async () => {
  await gw.stop();
});

function post(key: string, body: object) {
  return fetch(`${gw.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function ledgerSum(accountId: string) {
  const items = await gw.gateway.stores.usage.all(accountId);
  return { items, total: items.reduce((sum, i) => sum + i.amountMicroUsd, 0) };
}

describe('prepaid credits', () => {
  it('lets exactly 50 of 200 concurrent requests through when the balance pays for 50', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 100_000, tpm: 100_000_000, creditsMicroUsd: 50 * PER_REQUEST_MICRO_USD });
    const body = { model: 'priced', messages: [{ role: 'user', content: 'one two three four five six seven' }], max_tokens: 5 };
    const responses = await Promise.all(Array.from({ length: 200 }, () => post(acct.key, body)));
    const statuses = responses.map((r) => r.status);
    const bodies = await Promise.all(responses.map((r) => r.json()));
    expect(statuses.filter((s) => s === 200)).toHaveLength(50);
    expect(statuses.filter((s) => s === 402)).toHaveLength(150);
    for (const b of bodies.filter((b) => b.error)) expect(b.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
    expect(bodies.find((b) => b.error).error.message).toMatch(/needs \$0\.005000/);

    await gw.gateway.background.drain();
    const account = await gw.gateway.stores.accounts.get(acct.accountId);
    expect(account!.balanceMicroUsd).toBe(0);
    const { items, total } = await ledgerSum(acct.accountId);
    // The ledger (one top-up, 50 requests) sums to the balance.
    expect(items.filter((i) => i.kind === 'request')).toHaveLength(50);
    expect(total).toBe(account!.balanceMicroUsd);
  });

  it('lowers max_tokens to what the balance pays when the client named no limit', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 3 * 1000 });
    const res = await post(acct.key, { model: 'priced', messages: [{ role: 'user', content: 'tell me a long story' }] });
    expect(res.status).toBe(200);
    const completion = await res.json();
    expect(completion.choices[0].finish_reason).toBe('length');
    expect(completion.usage.completion_tokens).toBe(3);
    await gw.gateway.background.drain();
    expect((await gw.gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd).toBe(0);
  });

  it('answers 402 with the amount needed when the client’s own limit cannot be paid', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 3 * 1000 });
    const res = await post(acct.key, { model: 'priced', messages: [{ role: 'user', content: 'x' }], max_tokens: 10 });
    expect(res.status).toBe(402);
    const body = await res.json();
    expect(body.error.message).toContain('needs $0.010000');
    expect(body.error.message).toContain('balance is $0.003000');
    expect((await gw.gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd).toBe(3000);
  });

  it('charges what the provider reported and refunds the rest of the hold', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 1_000_000 });
    const res = await post(acct.key, { model: 'priced', messages: [{ role: 'user', content: 'short' }], max_tokens: 50 });
    const completion = await res.json();
    await gw.gateway.background.drain();
    const charged = completion.usage.completion_tokens * 1000;
    expect(completion.usage.completion_tokens).toBeLessThan(50);
    expect((await gw.gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd).toBe(1_000_000 - charged);
    const { items } = await ledgerSum(acct.accountId);
    const request = items.find((i) => i.kind === 'request')!;
    expect(request).toMatchObject({ amountMicroUsd: -charged, holdMicroUsd: 50_000, model: 'priced', route: 'mock:priced', status: 'completed', httpStatus: 200 });
  });
});

describe('upstream failure', () => {
  it('returns the whole hold when the upstream fails before the first byte', async () => {
    const upstream = await startUpstream((_req, _body, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'boom' } }));
    });
    const failing = await startTestGateway({
      catalog: catalogOf({
        models: { flaky: { ...PRICED.models.priced, routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'flaky' }] } },
      }),
    });
    try {
      const acct = await createAccount(failing, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 100_000 });
      const res = await fetch(`${failing.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'flaky', messages: [{ role: 'user', content: 'x' }], max_tokens: 10 }),
      });
      expect(res.status).toBe(502);
      expect((await res.json()).error).toMatchObject({ type: 'api_error', code: 'upstream_error' });
      await failing.gateway.background.drain();
      expect((await failing.gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd).toBe(100_000);
      const items = (await failing.gateway.stores.usage.all(acct.accountId)).filter((i) => i.kind === 'request');
      expect(items).toHaveLength(1);
      expect(items[0]).toMatchObject({ amountMicroUsd: 0, status: 'failed', httpStatus: 502, errorCode: 'upstream_error' });
    } finally {
      await failing.stop();
      await upstream.close();
    }
  });

  it('serves from the next route when the first fails before its first byte, and records the route', async () => {
    const down = await startUpstream((_req, _body, res) => {
      res.writeHead(503).end();
    });
    const up = await startUpstream((_req, body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(completionBody(body.model, 'from the second route')));
    });
    const routed = await startTestGateway({
      catalog: catalogOf({
        models: {
          m: {
            ...PRICED.models.priced,
            routes: [
              { provider: 'openai-compatible', base_url: down.url, model: 'first' },
              { provider: 'openai-compatible', base_url: up.url, model: 'second' },
            ],
          },
        },
      }),
    });
    try {
      const acct = await createAccount(routed, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000 });
      const res = await fetch(`${routed.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 10 }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-itapi-route')).toBe('openai-compatible:second');
      expect((await res.json()).choices[0].message.content).toBe('from the second route');
      await routed.gateway.background.drain();
      const [item] = (await routed.gateway.stores.usage.all(acct.accountId)).filter((i) => i.kind === 'request');
      expect(item.route).toBe('openai-compatible:second');
    } finally {
      await routed.stop();
      await down.close();
      await up.close();
    }
  });
});
