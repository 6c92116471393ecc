import { randomBytes } from 'node:crypto';
import { modelChoice } from '../../lambda/console/index';
import { parseCatalog } from '../../lambda/catalog';
import { consoleApi, consoleLink, consoleOrigin, postSignIn, sessionCookieOf, signIn, type ConsoleSession } from '../support/console';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * The console's Models page and its API, and what a signed-in holder meets when opening a link:
 * a spent one leads back to the console with a notice, another account's asks before switching.
 */

let gw: TestGateway;
let tierId: string;
let alice: { accountId: string; key: string };
let session: ConsoleSession;
const TIER_MODELS = ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'];

beforeAll(async () => {
  gw = await startTestGateway();
  tierId = `narrow_${randomBytes(4).toString('hex')}`;
  const tier = await fetch(`${gw.adminUrl}/tiers/${tierId}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${gw.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rpm: 60, tpm: 100_000, models: TIER_MODELS }),
  });
  expect(tier.status).toBe(200);
  alice = await createAccount(gw, { tier: tierId, models: ['gpt-4o-mini'] });
  await addKey(gw, alice.accountId, { tier: tierId });
  session = await signIn(gw, alice.accountId);
}, 60_000);

afterAll(async () => {
  await gw.stop();
});

const page = async (path: string, s: ConsoleSession | null = session) => {
  const res = await fetch(`${consoleOrigin(gw)}/console/${path}`, { headers: s ? { cookie: s.cookie } : {}, redirect: 'manual' });
  return { status: res.status, headers: res.headers, text: await res.text() };
};

/** The cells of one model's row on the Models page, by their `data-label`. */
function rowOf(html: string, model: string): Record<string, string> {
  const row = new RegExp(`<tr data-model="${model.replace(/[.]/g, '\\.')}">([\\s\\S]*?)</tr>`).exec(html)?.[1];
  if (!row) throw new Error(`no row for ${model}`);
  return Object.fromEntries([...row.matchAll(/<td[^>]*data-label="([^"]+)"[^>]*>([\s\S]*?)<\/td>/g)].map((m) => [m[1], m[2]]));
}

describe('the Models page', () => {
  it('lists every model the tier allows, no other, with prices per 1M tokens as billed and the context size', async () => {
    const res = await page('models');
    expect(res.status).toBe(200);
    const listed = [...res.text.matchAll(/<tr data-model="([^"]+)"/g)].map((m) => m[1]);
    expect(listed).toEqual([...TIER_MODELS].sort());
    for (const id of TIER_MODELS) {
      const entry = gw.catalog.get(id)!;
      const cells = rowOf(res.text, id);
      // The catalog's per-token nano-USD back to USD per million tokens: what every request is billed at.
      expect(Number(cells.Input.replace(/,/g, ''))).toBeCloseTo(entry.price.inputPerToken / 1000, 9);
      expect(Number(cells['Cached input'].replace(/,/g, ''))).toBeCloseTo(entry.price.cachedInputPerToken / 1000, 9);
      expect(cells.Context).toBe(entry.contextWindow.toLocaleString('en-US'));
      if (entry.kind === 'embedding') expect(cells.Output).toBe('—');
      else expect(Number(cells.Output)).toBeCloseTo(entry.price.outputPerToken / 1000, 9);
    }
    expect(rowOf(res.text, 'gpt-4o-mini')['Your keys']).toBe('all 2 keys');
    expect(rowOf(res.text, 'gpt-4o')['Your keys']).not.toContain('all');
    expect(res.text).toContain('href="models" aria-current="page"');
  });

  it('GET api/models answers the same prices and sizes as JSON', async () => {
    const res = await consoleApi(gw, session, 'GET', 'models');
    expect(res.status).toBe(200);
    expect(res.json.data.map((m: { id: string }) => m.id)).toEqual([...TIER_MODELS].sort());
    const mini = res.json.data.find((m: { id: string }) => m.id === 'gpt-4o-mini');
    const entry = gw.catalog.get('gpt-4o-mini')!;
    expect(mini).toEqual({
      id: 'gpt-4o-mini',
      owned_by: entry.ownedBy,
      kind: 'chat',
      context_window: entry.contextWindow,
      max_output_tokens: entry.maxOutputTokens,
      pricing: {
        input_per_mtok: entry.price.inputPerToken / 1000,
        output_per_mtok: entry.price.outputPerToken / 1000,
        cached_input_per_mtok: entry.price.cachedInputPerToken / 1000,
        cache_write_per_mtok: null,
        cache_write_1h_per_mtok: null,
      },
    });
  });

  it('without a session the page sends the browser to the console’s sign-in notice', async () => {
    const res = await page('models', null);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('./');
  });
});

describe('cache-write prices', () => {
  const base = { owned_by: 'x', context_window: 1000, max_output_tokens: 100, routes: [{ provider: 'mock', model: 'm' }] };

  it('are “—” where cache writes bill as plain input, and the cached price is the input price it is billed at', () => {
    const entry = parseCatalog({ models: { m: { ...base, pricing: { input_per_mtok: 3, output_per_mtok: 15 } } } }, 'test').get('m')!;
    expect(modelChoice(entry).pricing).toEqual({ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 3, cache_write_per_mtok: null, cache_write_1h_per_mtok: null });
  });

  it('are shown as the catalog states them when it has them, in local mode’s mock catalog too', () => {
    const pricing = { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75, cache_write_1h_per_mtok: 6 };
    const catalog = parseCatalog({ models: { m: { ...base, pricing } } }, 'test');
    expect(modelChoice(catalog.get('m')!).pricing).toEqual(pricing);
    expect(modelChoice(catalog.withMockRoutes().get('m')!).pricing).toEqual(pricing);
  });

  it('are what billing charges on a Claude model whose catalog states none: Anthropic’s 1.25× and 2× of input', () => {
    const entry = parseCatalog({ models: { m: { ...base, owned_by: 'anthropic', pricing: { input_per_mtok: 3, output_per_mtok: 15 } } } }, 'test').get('m')!;
    const shown = modelChoice(entry).pricing;
    expect(shown).toMatchObject({ cache_write_per_mtok: 3.75, cache_write_1h_per_mtok: 6 });
    // The very prices the bill uses (nano-USD per token).
    expect(shown.cache_write_per_mtok! * 1000).toBe(entry.price.cacheWritePerToken);
    expect(shown.cache_write_1h_per_mtok! * 1000).toBe(entry.price.cacheWrite1hPerToken);
  });
});

describe('a signed-in holder opening a link', () => {
  it('that is spent is sent back to the console with a notice, still signed in', async () => {
    const s = await signIn(gw, alice.accountId);
    const { token } = await consoleLink(gw, alice.accountId);
    expect((await postSignIn(gw, token)).status).toBe(303); // used up, by someone
    const res = await postSignIn(gw, token, { 'sec-fetch-site': 'same-origin', cookie: s.cookie });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('./?notice=link-used');
    expect(res.headers.getSetCookie()).toEqual([]);
    const console = await page('?notice=link-used', s);
    expect(console.status).toBe(200);
    expect(console.text).toContain('used already or has expired');
    // Signed out, the same link is an error page.
    expect((await postSignIn(gw, token)).status).toBe(400);
  });

  it('of another account is asked about first; the link stays unused until the holder switches', async () => {
    const bob = await createAccount(gw);
    const s = await signIn(gw, alice.accountId);
    const { token } = await consoleLink(gw, bob.accountId);
    const ask = await postSignIn(gw, token, { 'sec-fetch-site': 'same-origin', cookie: s.cookie });
    expect(ask.status).toBe(200);
    expect(ask.headers.getSetCookie()).toEqual([]);
    const html = await ask.text();
    expect(html).toContain('Switch account?');
    expect(html).toContain(`<code>${bob.accountId}</code>`);
    expect(html).toContain('name="switch" value="yes"');
    // Still Alice's console.
    expect((await consoleApi(gw, s, 'GET', 'account')).json.id).toBe(alice.accountId);
    // Choosing to switch: the (still unused) link signs in to Bob, and Alice's session ends.
    const res = await fetch(`${consoleOrigin(gw)}/console/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', cookie: s.cookie },
      body: new URLSearchParams({ token, switch: 'yes' }).toString(),
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    const bobSession = { cookie: sessionCookieOf(res), csrf: '' };
    expect((await consoleApi(gw, bobSession, 'GET', 'account')).json.id).toBe(bob.accountId);
    expect((await consoleApi(gw, s, 'GET', 'account')).status).toBe(401);
  });

  it('of the same account signs in afresh without asking', async () => {
    const s = await signIn(gw, alice.accountId);
    const { token } = await consoleLink(gw, alice.accountId);
    const res = await postSignIn(gw, token, { 'sec-fetch-site': 'same-origin', cookie: s.cookie });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('./');
    expect(sessionCookieOf(res)).not.toBe(s.cookie);
  });
});
