import { generateApiKey } from '../../lambda/auth/api-key';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { expectErrorBody, leaks, postChat } from './support';

/**
 * Security checks (issue 7, item 5): keys only hashed at rest, nothing secret in logs, unknown
 * and revoked keys indistinguishable, the admin API closed without its token, no CORS echo.
 */

const PROMPT = 'Sec8Rt the prompt';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw?.stop();
});

async function admin(path: string, init: RequestInit = {}, token: string | null = gw.adminToken) {
  return fetch(`${gw.adminUrl}${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...(token !== null ? { authorization: `Bearer ${token}` } : {}), ...(init.headers ?? {}) },
  });
}

describe('keys at rest and in logs', () => {
  it('stores keys only as SHA-256 hashes and keeps keys, prompts and completions out of the logs', async () => {
    const plaintext: string[] = [gw.apiKey!];
    // Keys made every way: the admin API (as users do) and the stores.
    const account = await (await admin('/accounts', { method: 'POST', body: JSON.stringify({ tier: 'pro', credits_usd: 5 }) })).json();
    for (let i = 0; i < 3; i++) {
      const made = await (await admin('/keys', { method: 'POST', body: JSON.stringify({ account_id: account.id, name: `k${i}` }) })).json();
      expect(made.key).toMatch(/^it_/);
      plaintext.push(made.key);
    }
    const direct = await createAccount(gw);
    plaintext.push(direct.key);

    // Use them: JSON and streams, a failure, a revocation.
    const completions: string[] = [];
    for (const key of plaintext) {
      const res = await postChat(gw, key, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 8 });
      expect(res.status).toBe(200);
      completions.push((await res.json()).choices[0].message.content);
      const stream = await postChat(gw, key, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 8, stream: true });
      await stream.text();
    }
    const keyList = await (await admin(`/accounts/${account.id}/keys`)).json();
    expect(JSON.stringify(keyList)).not.toMatch(/it_[0-9A-Za-z]{20,}/);
    await admin(`/keys/${keyList.data?.[0]?.id ?? keyList[0]?.id}`, { method: 'DELETE' });
    await gw.gateway.background.drain();

    // The keys table holds hashes, never a plaintext key (or its secret part).
    const scan = await gw.dynamo.call('Scan', { TableName: (gw.gateway.stores.keys as unknown as { tableName: string }).tableName });
    const stored = JSON.stringify(scan.Items);
    expect(scan.Items!.length).toBeGreaterThanOrEqual(plaintext.length);
    for (const key of plaintext) {
      expect(stored).not.toContain(key);
      expect(stored).not.toContain(key.slice(3, 30));
    }
    expect(stored).not.toMatch(/it_[0-9A-Za-z]{20,}/);
    // Nor does any other table.
    for (const table of [gw.gateway.stores.accounts.tableName, gw.gateway.stores.usage.tableName]) {
      const items = JSON.stringify((await gw.dynamo.call('Scan', { TableName: table })).Items);
      expect(items).not.toMatch(/it_[0-9A-Za-z]{20,}/);
      expect(items).not.toContain(PROMPT);
    }

    expect(gw.logs.length).toBeGreaterThan(plaintext.length);
    const secrets = [...plaintext, ...plaintext.map((k) => k.slice(3, 20)), PROMPT, ...completions.filter((c) => c.length > 8)];
    expect(leaks(gw.logs, secrets)).toEqual([]);
  });
});

describe('unknown and revoked keys', () => {
  it('answer the same 401 after the same number of store reads, and both are cached after one', async () => {
    const acct = await createAccount(gw);
    const revoked = await addKey(gw, acct.accountId);
    await gw.gateway.stores.keys.revoke(revoked.record.keyId);
    const stored = await gw.gateway.stores.keys.getByHash(revoked.record.keyHash);
    expect(stored!.status).toBe('revoked');
    const unknown = generateApiKey();

    const reads = jest.spyOn(gw.gateway.stores.keys, 'getByHash');
    try {
      const answer = async (key: string) => {
        const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${key}` } });
        const body = await res.json();
        expectErrorBody(body, 'authentication_error', 'invalid_api_key');
        return { status: res.status, message: body.error.message, headers: [...res.headers.keys()].filter((h) => h !== 'date' && h !== 'x-request-id').sort() };
      };
      const counts: Record<string, number[]> = { unknown: [], revoked: [] };
      const bodies: Record<string, unknown[]> = { unknown: [], revoked: [] };
      for (const [name, key] of [
        ['unknown', unknown],
        ['revoked', revoked.key],
      ] as const) {
        for (let i = 0; i < 3; i++) {
          const before = reads.mock.calls.length;
          bodies[name].push(await answer(key));
          counts[name].push(reads.mock.calls.length - before);
        }
      }
      // One read for the first call, none after: the same work whether or not the key exists.
      expect(counts.unknown).toEqual([1, 0, 0]);
      expect(counts.revoked).toEqual([1, 0, 0]);
      expect(bodies.unknown[0]).toEqual(bodies.revoked[0]);

      // Loose timing check on the cached path: medians within a factor of three, no more. The two
      // keys are sampled alternately, so a burst of load on the machine falls on both alike.
      const time = async (key: string) => {
        const t = process.hrtime.bigint();
        await (await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${key}` } })).text();
        return Number(process.hrtime.bigint() - t);
      };
      const samples: Record<'unknown' | 'revoked', number[]> = { unknown: [], revoked: [] };
      for (let i = 0; i < 30; i++) {
        samples.unknown.push(await time(unknown));
        samples.revoked.push(await time(revoked.key));
      }
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[15];
      const [u, r] = [median(samples.unknown), median(samples.revoked)];
      expect(Math.max(u, r) / Math.min(u, r)).toBeLessThan(3);
    } finally {
      reads.mockRestore();
    }
  });
});

describe('the admin API', () => {
  it('refuses every call without the admin token, with a wrong one, or with an API key', async () => {
    const acct = await createAccount(gw);
    const calls: Array<[string, RequestInit]> = [
      ['/accounts', { method: 'POST', body: JSON.stringify({ tier: 'enterprise', credits_usd: 1000 }) }],
      [`/accounts/${acct.accountId}`, {}],
      [`/accounts/${acct.accountId}/credits`, { method: 'POST', body: JSON.stringify({ amount_usd: 1000, reference: 'steal' }) }],
      ['/keys', { method: 'POST', body: JSON.stringify({ account_id: acct.accountId }) }],
      [`/accounts/${acct.accountId}/keys`, {}],
      [`/keys/${acct.record.keyId}`, { method: 'DELETE' }],
      ['/tiers', {}],
      ['/tiers/free', { method: 'PUT', body: JSON.stringify({ rpm: 1_000_000, tpm: 1_000_000_000 }) }],
      [`/accounts/${acct.accountId}/usage`, {}],
    ];
    for (const token of [null, '', 'wrong', `${gw.adminToken}x`, gw.adminToken.slice(0, -1), acct.key]) {
      for (const [path, init] of calls) {
        const res = await admin(path, init, token);
        expect(res.status).toBe(401);
        expectErrorBody(await res.json(), 'authentication_error');
      }
    }
    // Nothing changed: the balance and the free tier are as they were, the key still works.
    expect((await gw.gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd).toBe(10_000_000);
    expect((await gw.gateway.stores.tiers.get('free'))!.rpm).toBe(10);
    expect((await postChat(gw, acct.key, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })).status).toBe(200);
    // And with the token it answers.
    expect((await admin(`/accounts/${acct.accountId}`)).status).toBe(200);
  });
});

describe('CORS', () => {
  it('does not echo an arbitrary origin, let alone with credentials', async () => {
    const origin = 'https://evil.example';
    const acct = await createAccount(gw);
    const answers = [
      await fetch(`${gw.baseUrl}/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      }),
      await fetch(`${gw.baseUrl}/models`, { headers: { origin, authorization: `Bearer ${acct.key}` } }),
      await postChat(gw, acct.key, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 }, { headers: { origin, authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' } }),
      await fetch(`${gw.adminUrl}/tiers`, { headers: { origin, authorization: `Bearer ${gw.adminToken}` } }),
    ];
    for (const res of answers) {
      await res.text();
      const allowOrigin = res.headers.get('access-control-allow-origin');
      expect(allowOrigin === origin && res.headers.get('access-control-allow-credentials') === 'true').toBe(false);
      expect(allowOrigin).not.toBe(origin);
      expect(res.headers.get('access-control-allow-credentials')).not.toBe('true');
    }
  });
});
