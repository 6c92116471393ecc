import OpenAI from 'openai';
import { hashApiKey } from '../../lambda/auth/api-key';
import { consoleApi, consoleLink, consoleOrigin, postSignIn, sessionCookieOf, signIn, type ConsoleSession } from '../support/console';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * The console's JSON API and pages over real HTTP on the local gateway: sign-in by a one-time
 * link, sessions, CSRF, isolation between accounts, keys, usage.
 */

let gw: TestGateway;
let alice: { accountId: string; key: string };
let bob: { accountId: string; key: string };
let aliceSession: ConsoleSession;

beforeAll(async () => {
  gw = await startTestGateway();
  alice = await createAccount(gw);
  bob = await createAccount(gw);
  aliceSession = await signIn(gw, alice.accountId);
}, 60_000);

afterAll(async () => {
  await gw.stop();
});

describe('sign-in links', () => {
  it('POST /admin/accounts/{id}/console-links answers a one-time URL valid 15 minutes', async () => {
    const before = Math.floor(Date.now() / 1000);
    const link = await consoleLink(gw, alice.accountId);
    expect(link.url).toMatch(new RegExp(`^${consoleOrigin(gw)}/console/sign-in#[A-Za-z0-9_-]{43}$`));
    expect(link.expires_at).toBeGreaterThanOrEqual(before + 15 * 60);
    expect(link.expires_at).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 15 * 60);
  });

  it('is 404 for an unknown account', async () => {
    const res = await fetch(`${gw.adminUrl}/accounts/nobody-here/console-links`, { method: 'POST', headers: { authorization: `Bearer ${gw.adminToken}` } });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('not_found');
  });

  it('signs in once: the session cookie is HttpOnly and SameSite=Strict, and the same link signs no one in again', async () => {
    const { token } = await consoleLink(gw, alice.accountId);
    const first = await postSignIn(gw, token);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('./');
    const setCookie = first.headers.getSetCookie().find((c) => c.startsWith('itapi_console='))!;
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).toMatch(/; Path=\//);
    // Local mode is plain http: no Secure attribute (on https the cookie is `__Host-` and Secure).
    expect(setCookie).not.toMatch(/Secure/);

    const again = await postSignIn(gw, token);
    expect(again.status).toBe(400);
    expect(again.headers.getSetCookie()).toEqual([]);
    expect(await again.text()).toContain('used already, has expired or is not valid');
  });

  it('a made-up or malformed token signs no one in', async () => {
    for (const token of ['x'.repeat(43), 'short', '', `${'a'.repeat(42)}!`]) {
      const res = await postSignIn(gw, token);
      expect(res.status).toBe(400);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
  });

  it('two concurrent uses of one link start exactly one session', async () => {
    const { token } = await consoleLink(gw, alice.accountId);
    const answers = await Promise.all(Array.from({ length: 6 }, () => postSignIn(gw, token)));
    expect(answers.map((r) => r.status).sort()).toEqual([303, 400, 400, 400, 400, 400]);
  });

  it('refuses a sign-in posted from another site (login CSRF)', async () => {
    const { token } = await consoleLink(gw, alice.accountId);
    expect((await postSignIn(gw, token, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await postSignIn(gw, token, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await postSignIn(gw, token, {})).status).toBe(403);
    // The refused posts did not use the link up.
    expect((await postSignIn(gw, token, { origin: consoleOrigin(gw) })).status).toBe(303);
  });

  it('stores only hashes: no item of the sessions table holds a link token or a session id', async () => {
    const { token } = await consoleLink(gw, alice.accountId);
    const cookie = sessionCookieOf(await postSignIn(gw, token));
    const sessionId = cookie.split('=')[1];
    const scan = await gw.dynamo.call('Scan', { TableName: gw.gateway.stores.sessions.tableName });
    const dump = JSON.stringify(scan.Items);
    expect(scan.Items!.length).toBeGreaterThan(2);
    expect(dump).not.toContain(token);
    expect(dump).not.toContain(sessionId);
    expect(dump).toContain(hashApiKey(token)); // SHA-256 hex, the same function as for API keys
    for (const item of scan.Items!) expect(Number(item.expires_at.N)).toBeGreaterThan(Date.now() / 1000);
  });
});

describe('sessions', () => {
  it('without a session the API answers 401 and the page says to sign in', async () => {
    const api = await consoleApi(gw, undefined, 'GET', 'account');
    expect(api.status).toBe(401);
    expect(api.json.error).toMatchObject({ type: 'authentication_error', code: 'session_required' });
    const page = await fetch(`${consoleOrigin(gw)}/console/`);
    expect(page.status).toBe(401);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('Not signed in');
    const forged = await consoleApi(gw, { cookie: `itapi_console=${'A'.repeat(43)}`, csrf: 'x' }, 'GET', 'keys');
    expect(forged.status).toBe(401);
  });

  it('sign-out ends the session on the server: the old cookie no longer works', async () => {
    const s = await signIn(gw, alice.accountId);
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(200);
    const out = await fetch(`${consoleOrigin(gw)}/console/sign-out`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ csrf: s.csrf }).toString(),
      redirect: 'manual',
    });
    expect(out.status).toBe(303);
    expect(out.headers.getSetCookie()[0]).toMatch(/^itapi_console=; Max-Age=0/);
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(401);
  });

  it('sign-out from another site is refused and the session lives on', async () => {
    const s = await signIn(gw, alice.accountId);
    const out = await fetch(`${consoleOrigin(gw)}/console/sign-out`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' },
      body: new URLSearchParams({ csrf: s.csrf }).toString(),
      redirect: 'manual',
    });
    expect(out.status).toBe(403);
    expect(out.headers.getSetCookie()).toEqual([]);
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(200);
  });

  it('sign-out without the CSRF token, or with a wrong one, is refused and the session lives on', async () => {
    const s = await signIn(gw, alice.accountId);
    for (const body of [{}, { csrf: 'not-the-token' }] as Array<Record<string, string>>) {
      const out = await fetch(`${consoleOrigin(gw)}/console/sign-out`, {
        method: 'POST',
        headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
        body: new URLSearchParams(body).toString(),
        redirect: 'manual',
      });
      expect(out.status).toBe(403);
    }
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(200);
  });

  /** A form post to sign-out, as a browser would send it, with the headers given. */
  const postSignOut = (headers: Record<string, string>, body: Record<string, string>) =>
    fetch(`${consoleOrigin(gw)}/console/sign-out`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(body).toString(),
      redirect: 'manual',
    });

  it('a cross-site form post to sign-out (no cookie: SameSite=Strict) is refused and does not clear the cookie', async () => {
    const s = await signIn(gw, alice.accountId);
    for (const headers of [{ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }, { origin: 'https://evil.example' }, {}] as Array<Record<string, string>>) {
      const out = await postSignOut(headers, {});
      expect(out.status).toBe(403);
      expect(out.headers.getSetCookie()).toEqual([]);
      expect((await out.text())).toContain('console page itself');
    }
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(200);
  });

  it('sign-out from another port of the same host is another origin: refused even with the cookie and the token', async () => {
    const s = await signIn(gw, alice.accountId);
    const own = new URL(consoleOrigin(gw));
    const otherPort = `${own.protocol}//${own.hostname}:${Number(own.port) === 65535 ? 65534 : Number(own.port) + 1}`;
    for (const headers of [
      { 'sec-fetch-site': 'same-site', origin: otherPort },
      { origin: otherPort },
      // A browser that says same-origin but names another origin is not believed either.
      { 'sec-fetch-site': 'same-origin', origin: otherPort },
    ] as Array<Record<string, string>>) {
      const out = await postSignOut({ cookie: s.cookie, ...headers }, { csrf: s.csrf });
      expect(out.status).toBe(403);
      expect(out.headers.getSetCookie()).toEqual([]);
    }
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(200);
    // The same post from the console's own origin signs out.
    const own2 = await postSignOut({ cookie: s.cookie, 'sec-fetch-site': 'same-origin', origin: consoleOrigin(gw) }, { csrf: s.csrf });
    expect(own2.status).toBe(303);
    expect(own2.headers.getSetCookie()[0]).toMatch(/^itapi_console=; Max-Age=0/);
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(401);
  });

  it('an API change whose Origin is another port is refused whatever Sec-Fetch-Site says', async () => {
    const own = new URL(consoleOrigin(gw));
    const otherPort = `${own.protocol}//${own.hostname}:${Number(own.port) + 1}`;
    const res = await consoleApi(gw, aliceSession, 'POST', 'keys', { name: 'x' }, { origin: otherPort });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe('csrf_failed');
  });

  it('the operator revokes every session of an account (DELETE /admin/accounts/{id}/console-sessions)', async () => {
    const target = await createAccount(gw);
    const [s1, s2] = [await signIn(gw, target.accountId), await signIn(gw, target.accountId)];
    const unused = await consoleLink(gw, target.accountId);
    const res = await fetch(`${gw.adminUrl}/accounts/${target.accountId}/console-sessions`, { method: 'DELETE', headers: { authorization: `Bearer ${gw.adminToken}` } });
    expect(res.status).toBe(200);
    expect((await res.json()).revoked).toBeGreaterThanOrEqual(3);
    expect((await consoleApi(gw, s1, 'GET', 'account')).status).toBe(401);
    expect((await consoleApi(gw, s2, 'GET', 'account')).status).toBe(401);
    expect((await postSignIn(gw, unused.token)).status).toBe(400);
    // Another account's session is untouched.
    expect((await consoleApi(gw, aliceSession, 'GET', 'account')).status).toBe(200);
  });
});

describe('CSRF on every change', () => {
  const create = (headers: Record<string, string | null>) => consoleApi(gw, aliceSession, 'POST', 'keys', { name: 'csrf-probe' }, headers);

  it('refuses a change without the token, with a wrong token, or from another origin; nothing is created', async () => {
    const before = (await consoleApi(gw, aliceSession, 'GET', 'keys')).json.data.length;
    for (const headers of [
      { 'x-csrf-token': null },
      { 'x-csrf-token': 'A'.repeat(43) },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': null, origin: 'https://evil.example' },
      { 'sec-fetch-site': null },
    ] as Array<Record<string, string | null>>) {
      const res = await create(headers);
      expect(res.status).toBe(403);
      expect(res.json.error).toMatchObject({ type: 'permission_error', code: 'csrf_failed' });
    }
    // Without Sec-Fetch-Site, a matching Origin is accepted (older browsers send only Origin).
    const viaOrigin = await fetch(`${consoleOrigin(gw)}/console/api/keys`, {
      method: 'POST',
      headers: { cookie: aliceSession.cookie, 'x-csrf-token': aliceSession.csrf, origin: consoleOrigin(gw), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'via-origin' }),
    });
    expect(viaOrigin.status).toBe(201);
    const after = (await consoleApi(gw, aliceSession, 'GET', 'keys')).json.data;
    expect(after.length).toBe(before + 1);
    expect(after.map((k: { name: string }) => k.name)).not.toContain('csrf-probe');
  });

  it('one session’s token does not work with another session', async () => {
    const other = await signIn(gw, alice.accountId);
    const res = await consoleApi(gw, { cookie: other.cookie, csrf: aliceSession.csrf }, 'POST', 'keys', { name: 'mixed' });
    expect(res.status).toBe(403);
  });
});

describe('keys', () => {
  it('creates a key that works with the openai client, shows its secret once, lists it without, and revokes it', async () => {
    const created = await consoleApi(gw, aliceSession, 'POST', 'keys', { name: 'laptop', models: ['gpt-4o-mini'], rpm: 30, expires_at: '2099-01-01T00:00:00Z' });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ object: 'api_key', account_id: alice.accountId, name: 'laptop', models: ['gpt-4o-mini'], rpm: 30, status: 'active', expires_at: 4070908800 });
    expect(created.json.key).toMatch(/^it_[0-9A-Za-z]{40}$/);
    const secret: string = created.json.key;

    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: secret, maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.choices[0].message.content).toBeTruthy();

    const listed = await consoleApi(gw, aliceSession, 'GET', 'keys');
    expect(listed.text).not.toContain(secret);
    expect(listed.json.data.find((k: { id: string }) => k.id === created.json.id)).toMatchObject({ name: 'laptop', prefix: created.json.prefix });
    expect((await consoleApi(gw, aliceSession, 'GET', `keys/${created.json.id}`)).json).not.toHaveProperty('key');

    const revoked = await consoleApi(gw, aliceSession, 'DELETE', `keys/${created.json.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.json.status).toBe('revoked');
    gw.gateway.auth.forget(hashApiKey(secret));
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] })).rejects.toMatchObject({ status: 401 });
    // Nothing the console wrote to the log holds the secret.
    expect(gw.logs.join('\n')).not.toContain(secret);
  });

  it('checks a new key’s fields as the admin API does, naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ models: ['no-such-model'] }, 'models[0]'],
      [{ expires_at: '2001-01-01T00:00:00Z' }, 'expires_at'],
      [{ rpm: 0 }, 'rpm'],
      [{ account_id: bob.accountId }, 'account_id'],
    ];
    for (const [body, param] of cases) {
      const res = await consoleApi(gw, aliceSession, 'POST', 'keys', body);
      expect(res.status).toBe(400);
      expect(res.json.error.param).toBe(param);
    }
  });
});

describe('a disabled account', () => {
  it('may still look at its console, but not create keys or start a top-up', async () => {
    const acct = await createAccount(gw);
    const s = await signIn(gw, acct.accountId);
    await gw.gateway.stores.accounts.update(acct.accountId, { status: 'disabled' });
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(200);
    for (const [path, body] of [
      ['keys', { name: 'late' }],
      ['top-up', { amount_usd: 10, return_url: `${consoleOrigin(gw)}/console/` }],
    ] as const) {
      const res = await consoleApi(gw, s, 'POST', path, body);
      expect(res.status).toBe(403);
      expect(res.json.error.code).toBe('account_disabled');
    }
    expect((await gw.gateway.stores.keys.listByAccount(acct.accountId)).length).toBe(1);
  });
});

describe('isolation between accounts', () => {
  it('another account’s key id answers 404, never its data, and is not revoked', async () => {
    const bobKeys = await gw.gateway.stores.keys.listByAccount(bob.accountId);
    const bobKeyId = bobKeys[0].keyId;
    const get = await consoleApi(gw, aliceSession, 'GET', `keys/${bobKeyId}`);
    const del = await consoleApi(gw, aliceSession, 'DELETE', `keys/${bobKeyId}`);
    const missing = await consoleApi(gw, aliceSession, 'DELETE', 'keys/key_doesnotexist');
    for (const res of [get, del]) {
      expect(res.status).toBe(404);
      expect(res.text).not.toContain(bob.accountId);
      expect(res.json.error).toEqual({ ...missing.json.error, message: `No key with id '${bobKeyId}'.` });
    }
    expect((await gw.gateway.stores.keys.getById(bobKeyId))!.status).toBe('active');
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: bob.key, maxRetries: 0 });
    await expect(client.models.list()).resolves.toBeDefined();
  });

  it('lists, usage and the account are the session’s own only', async () => {
    const keys = await consoleApi(gw, aliceSession, 'GET', 'keys');
    expect(keys.json.data.every((k: { account_id: string }) => k.account_id === alice.accountId)).toBe(true);
    const account = await consoleApi(gw, aliceSession, 'GET', 'account');
    expect(account.json.id).toBe(alice.accountId);
    const ledger = await consoleApi(gw, aliceSession, 'GET', 'usage/requests?limit=200');
    const bobIds = (await gw.gateway.stores.usage.all(bob.accountId)).map((e) => e.id);
    for (const id of bobIds) expect(ledger.text).not.toContain(id);
  });
});

describe('pages', () => {
  it('sends a Content-Security-Policy without inline scripts or styles on every answer', async () => {
    for (const [path, cookie] of [
      ['/console/', aliceSession.cookie],
      ['/console/sign-in', ''],
      ['/console/api/account', aliceSession.cookie],
      ['/console/nowhere', ''],
    ]) {
      const res = await fetch(`${consoleOrigin(gw)}${path}`, { headers: cookie ? { cookie } : {} });
      const csp = res.headers.get('content-security-policy')!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      if (res.headers.get('content-type')?.startsWith('text/html')) {
        const html = await res.text();
        // Every <script> has a src (no inline code), and no element has a style attribute.
        expect(html.match(/<script(?![^>]*\ssrc=)[^>]*>/g)).toBeNull();
        expect(html).not.toMatch(/\sstyle=/);
        expect(html).not.toMatch(/\son[a-z]+=/);
      }
    }
  });

  it('/console redirects to /console/ (relative, so it works under a stage prefix)', async () => {
    const res = await fetch(`${consoleOrigin(gw)}/console`, { redirect: 'manual' });
    expect(res.status).toBe(308);
    expect(res.headers.get('location')).toBe('console/');
  });

  it('serves the browser script and stylesheet from the function, versioned URLs cached for good', async () => {
    const page = await (await fetch(`${consoleOrigin(gw)}/console/`, { headers: { cookie: aliceSession.cookie } })).text();
    const script = /src="(assets\/console\.js\?v=[^"]+)"/.exec(page)![1];
    const styles = /href="(assets\/console\.css\?v=[^"]+)"/.exec(page)![1];
    const js = await fetch(`${consoleOrigin(gw)}/console/${script}`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect((await js.text()).length).toBeGreaterThan(1000);
    const css = await fetch(`${consoleOrigin(gw)}/console/${styles}`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(await css.text()).toContain('.series-0');
  });
});

describe('usage', () => {
  let carol: { accountId: string; key: string };
  let session: ConsoleSession;
  const requestIds: string[] = [];

  beforeAll(async () => {
    carol = await createAccount(gw);
    session = await signIn(gw, carol.accountId);
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: carol.key, maxRetries: 0 });
    for (const model of ['gpt-4o', 'gpt-4o-mini', 'gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'gpt-4o-mini']) {
      const { response } = await client.chat.completions.create({ model, messages: [{ role: 'user', content: `Hello ${model}, say something` }] }).withResponse();
      requestIds.push(response.headers.get('x-request-id')!);
    }
    await gw.gateway.background.drain();
  }, 60_000);

  it('sums spend and tokens per day and model; the totals equal the ledger', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const res = await consoleApi(gw, session, 'GET', `usage?from=${today}&to=${today}`);
    expect(res.status).toBe(200);
    const summary = res.json;
    expect(summary).toMatchObject({ object: 'usage_summary', from: today, to: today });
    expect(summary.days).toHaveLength(1);
    expect(summary.models.sort()).toEqual(['claude-3-5-sonnet-20241022', 'gpt-4o', 'gpt-4o-mini']);
    const day = summary.days[0].models;
    expect(day['gpt-4o-mini'].requests).toBe(3);
    const ledger = (await gw.gateway.stores.usage.all(carol.accountId)).filter((e) => e.kind === 'request');
    expect(ledger).toHaveLength(5);
    const cost = ledger.reduce((sum, e) => sum - e.amountMicroUsd, 0);
    expect(summary.totals.cost_micro_usd).toBe(cost);
    expect(summary.totals.requests).toBe(5);
    expect(Object.values(day).reduce((sum: number, m: any) => sum + m.cost_micro_usd, 0)).toBe(cost);
    expect(cost).toBeGreaterThan(0);
  });

  it('follows the Key and Model filters like the ledger, from the roll-ups alone', async () => {
    const dave = await createAccount(gw);
    const daveSession = await signIn(gw, dave.accountId);
    const other = await addKey(gw, dave.accountId, { tier: 'pro' });
    for (const [key, model] of [
      [dave.key, 'gpt-4o'],
      [dave.key, 'gpt-4o-mini'],
      [dave.key, 'gpt-4o-mini'],
      [other.key, 'gpt-4o'],
      [other.key, 'claude-3-5-sonnet-20241022'],
    ]) {
      const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: key, maxRetries: 0 });
      await client.chat.completions.create({ model, messages: [{ role: 'user', content: `Hello ${model}, from a key` }] });
    }
    await gw.gateway.background.drain();
    const today = new Date().toISOString().slice(0, 10);
    const ledger = (await gw.gateway.stores.usage.all(dave.accountId)).filter((e) => e.kind === 'request');
    const firstKey = ledger.find((e) => e.keyId !== other.record.keyId)!.keyId!;
    const queried: string[] = [];
    let recording = false;
    gw.dynamo.intercept(async (operation, input, next) => {
      if (recording && (operation === 'Query' || operation === 'Scan' || operation === 'GetItem')) queried.push(`${operation} ${String(input.TableName)}`);
      return next();
    });
    const summaryOf = async (query: string) => {
      recording = true;
      try {
        const res = await consoleApi(gw, daveSession, 'GET', `usage?from=${today}&to=${today}${query}`);
        expect(res.status).toBe(200);
        return res.json;
      } finally {
        recording = false;
      }
    };
    const costOf = (entries: typeof ledger) => entries.reduce((sum, e) => sum - e.amountMicroUsd, 0);
    const cases: Array<[string, (e: (typeof ledger)[number]) => boolean, Record<string, unknown>]> = [
      [`&key=${other.record.keyId}`, (e) => e.keyId === other.record.keyId, { key: other.record.keyId, model: null }],
      [`&key=${firstKey}`, (e) => e.keyId === firstKey, { key: firstKey, model: null }],
      ['&model=gpt-4o-mini', (e) => e.model === 'gpt-4o-mini', { key: null, model: 'gpt-4o-mini' }],
      [`&key=${firstKey}&model=gpt-4o`, (e) => e.keyId === firstKey && e.model === 'gpt-4o', { key: firstKey, model: 'gpt-4o' }],
      ['', () => true, { key: null, model: null }],
    ];
    for (const [query, matches, echoed] of cases) {
      const s = await summaryOf(query);
      const expected = ledger.filter(matches);
      expect(s).toMatchObject(echoed);
      expect(s.totals).toMatchObject({ requests: expected.length, cost_micro_usd: costOf(expected) });
      expect(s.models.sort()).toEqual([...new Set(expected.map((e) => e.model))].sort());
      const drawn = Object.values(s.days[0].models).reduce((sum: number, m: any) => sum + m.cost_micro_usd, 0);
      expect(drawn).toBe(costOf(expected));
    }
    expect(ledger.filter((e) => e.keyId === other.record.keyId)).toHaveLength(2);
    // The roll-ups and the account, never the usage table (the ledger).
    expect(queried.some((q) => q.endsWith(gw.gateway.stores.usage.tableName))).toBe(false);
    expect(queried).toContain(`Query ${gw.gateway.stores.rollups.tableName}`);
    const bad = await consoleApi(gw, daveSession, 'GET', `usage?model=${encodeURIComponent('bad model')}`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('model');
  });

  it('defaults to the last 30 days and refuses bad ranges, naming the parameter', async () => {
    const res = await consoleApi(gw, session, 'GET', 'usage');
    expect(res.json.days).toHaveLength(30);
    expect(res.json.to).toBe(new Date().toISOString().slice(0, 10));
    for (const [query, param] of [
      ['from=2025-02-30', 'from'],
      ['to=yesterday', 'to'],
      ['from=2025-03-02&to=2025-03-01', 'from'],
      ['from=2020-01-01&to=2025-01-01', 'from'],
    ]) {
      const bad = await consoleApi(gw, session, 'GET', `usage?${query}`);
      expect(bad.status).toBe(400);
      expect(bad.json.error.param).toBe(param);
    }
  });

  it('pages the ledger newest first without gaps or repeats, and the last page offers no next one', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: any = await consoleApi(gw, session, 'GET', `usage/requests?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.json.data.length).toBeLessThanOrEqual(2);
      seen.push(...res.json.data.map((r: { id: string }) => r.id));
      for (const r of res.json.data) expect(Object.keys(r)).toEqual(expect.arrayContaining(['at', 'id', 'model', 'route', 'status', 'prompt_tokens', 'completion_tokens', 'cost_micro_usd']));
      cursor = res.json.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...requestIds].reverse());
    const bad = await consoleApi(gw, session, 'GET', 'usage/requests?cursor=bm90LWEtY3Vyc29y');
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('cursor');
    // A well-formed cursor from outside the range asked for (a stale page, another range): 400, not a DynamoDB error.
    const elsewhere = Buffer.from('0000000000001#req_old').toString('base64url');
    const stale = await consoleApi(gw, session, 'GET', `usage/requests?cursor=${elsewhere}`);
    expect(stale.status).toBe(400);
    expect(stale.json.error.param).toBe('cursor');
  });

  it('downloads the range as CSV: a header and one row per request, costs exact', async () => {
    const res = await consoleApi(gw, session, 'GET', 'usage.csv');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(new RegExp(`^attachment; filename="itapi-usage-${carol.accountId}-\\d{4}-\\d{2}-\\d{2}-\\d{4}-\\d{2}-\\d{2}\\.csv"$`));
    const lines = res.text.trimEnd().split('\r\n');
    expect(lines[0]).toBe('time,request_id,key_id,model,route,status,http_status,error_code,prompt_tokens,completion_tokens,cached_tokens,cost_usd,cost_micro_usd,latency_ms,stream,cache_write_tokens,cache_write_1h_tokens,reasoning_tokens,server_tool_calls,service_tier');
    expect(lines.slice(1).map((l) => l.split(',')[1])).toEqual(requestIds);
    const ledger = await gw.gateway.stores.usage.all(carol.accountId);
    for (const line of lines.slice(1)) {
      const f = line.split(',');
      const entry = ledger.find((e) => e.id === f[1])!;
      const column = (name: string) => f[lines[0].split(',').indexOf(name)];
      expect(Number(column('cost_micro_usd'))).toBe(-entry.amountMicroUsd);
      expect(column('cost_usd')).toBe((-entry.amountMicroUsd / 1e6).toFixed(6));
      expect(column('model')).toBe(entry.model);
      expect(column('status')).toBe(entry.status);
    }
  });
});
