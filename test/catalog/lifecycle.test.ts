import OpenAI from 'openai';
import { Catalog, CatalogError, loadCatalog, parseCatalog, type CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { completionBody, startUpstream } from '../support/upstream';

/**
 * Issue 20, item 6: a route may carry `shutdown_date` and `successor`; from that day the
 * successor's routes serve in its place, at the successor's prices, without a redeploy.
 */

const at = (day: string) => () => Date.parse(`${day}T12:00:00Z`);

function model(upstream: string, prices: [number, number], routeExtra: Record<string, string> = {}, maxOut = 1000) {
  return {
    owned_by: 'test',
    pricing: { input_per_mtok: prices[0], output_per_mtok: prices[1] },
    context_window: 100_000,
    max_output_tokens: maxOut,
    routes: [{ provider: 'mock' as const, model: upstream, ...routeExtra }],
  };
}

const FILE: CatalogFile = {
  models: {
    old: model('old-upstream', [2.5, 10], { shutdown_date: '2027-01-14', successor: 'new' }),
    new: model('new-upstream', [2, 8], {}, 4000),
  },
};

function problems(doc: unknown): string {
  try {
    parseCatalog(doc, 'test');
  } catch (err) {
    if (err instanceof CatalogError) return err.message;
    throw err;
  }
  throw new Error('the catalog was accepted');
}

describe('catalog: routes with a shutdown date', () => {
  it('serves the route itself until the day before its shutdown, and says until when', () => {
    const entry = parseCatalog(FILE, 'test', { now: at('2027-01-13') }).get('old')!;
    expect(entry.routes.map((r) => r.model)).toEqual(['old-upstream']);
    expect(entry.price).toMatchObject({ inputPerToken: 2500, outputPerToken: 10_000 });
    expect(entry).toMatchObject({ shutdownDate: '2027-01-14', successor: 'new', maxOutputTokens: 1000 });
    expect(entry.servedBy).toBeUndefined();
  });

  it('from the shutdown day on, serves the successor at its prices and limits, under the id asked for', () => {
    for (const day of ['2027-01-14', '2027-06-01']) {
      const entry = parseCatalog(FILE, 'test', { now: at(day) }).get('old')!;
      expect(entry.id).toBe('old');
      expect(entry.ownedBy).toBe('test');
      expect(entry.routes.map((r) => r.model)).toEqual(['new-upstream']);
      expect(entry.price).toMatchObject({ inputPerToken: 2000, outputPerToken: 8000 });
      expect(entry).toMatchObject({ maxOutputTokens: 4000, servedBy: 'new', shutdownDate: null, successor: null });
    }
  });

  it('switches when the clock passes the date, with no reload (no redeploy)', () => {
    let nowMs = Date.parse('2027-01-13T23:59:59Z');
    const catalog = parseCatalog(FILE, 'test', { now: () => nowMs });
    expect(catalog.get('old')!.routes[0].model).toBe('old-upstream');
    nowMs += 1000;
    expect(catalog.get('old')!.routes[0].model).toBe('new-upstream');
  });

  it('puts the successor’s routes in place of the retired one, in order, resolving the successor’s own dates', () => {
    const file: CatalogFile = {
      models: {
        a: {
          ...model('a1', [1, 1]),
          routes: [
            { provider: 'mock', model: 'a1', shutdown_date: '2027-01-01', successor: 'b' },
            { provider: 'mock', model: 'a2' },
          ],
        },
        b: {
          ...model('b1', [3, 3]),
          routes: [
            { provider: 'mock', model: 'b1', shutdown_date: '2027-02-01', successor: 'c' },
            { provider: 'mock', model: 'b2' },
          ],
        },
        c: model('c1', [5, 5]),
      },
    };
    const catalog = (day: string) => parseCatalog(file, 'test', { now: at(day) });
    expect(catalog('2026-12-31').get('a')!.routes.map((r) => r.model)).toEqual(['a1', 'a2']);
    expect(catalog('2027-01-01').get('a')!.routes.map((r) => r.model)).toEqual(['b1', 'b2', 'a2']);
    expect(catalog('2027-01-01').get('a')).toMatchObject({ shutdownDate: '2027-02-01', successor: 'c', servedBy: 'b' });
    expect(catalog('2027-02-01').get('a')!.routes.map((r) => r.model)).toEqual(['c1', 'b2', 'a2']);
    expect(catalog('2027-02-01').get('a')!.price.inputPerToken).toBe(5000);
  });

  it('drops a route shut down without a successor; a model left with none is gone (404), the catalog still loads', () => {
    const file: CatalogFile = { models: { gone: model('g', [1, 1], { shutdown_date: '2026-01-01' }), kept: model('k', [1, 1]) } };
    const catalog = parseCatalog(file, 'test', { now: at('2026-12-05') });
    expect(catalog.get('gone')).toBeUndefined();
    expect(catalog.list().map((m) => m.id)).toEqual(['kept']);
    expect(catalog.get('kept')!.shutdownDate).toBeNull();
  });

  it('refuses a successor that is unknown, itself, of another kind, a loop, or without a date; and a date that is not one', () => {
    const base = FILE.models;
    expect(problems({ models: { ...base, old: model('o', [1, 1], { shutdown_date: '2027-01-14', successor: 'nope' }) } })).toContain(
      "models.old.routes.0.successor: 'nope' is not a model of this catalog",
    );
    expect(problems({ models: { ...base, old: model('o', [1, 1], { shutdown_date: '2027-01-14', successor: 'old' }) } })).toContain('a model cannot succeed itself');
    expect(
      problems({
        models: { ...base, emb: { kind: 'embedding', owned_by: 't', pricing: { input_per_mtok: 1 }, context_window: 10, routes: [{ provider: 'mock', model: 'e', shutdown_date: '2027-01-01', successor: 'new' }] } },
      }),
    ).toContain("'new' is of another kind");
    expect(
      problems({
        models: { a: model('a', [1, 1], { shutdown_date: '2027-01-01', successor: 'b' }), b: model('b', [1, 1], { shutdown_date: '2027-02-01', successor: 'a' }) },
      }),
    ).toContain("successors loop back to 'a'");
    expect(problems({ models: { ...base, old: model('o', [1, 1], { successor: 'new' }) } })).toContain('models.old.routes.0.shutdown_date: is required with successor');
    expect(problems({ models: { ...base, old: model('o', [1, 1], { shutdown_date: '2027-02-30' }) } })).toContain('must be a calendar date YYYY-MM-DD');
    expect(problems({ models: { ...base, old: model('o', [1, 1], { shutdown_date: '14/01/2027' }) } })).toContain('must be a calendar date YYYY-MM-DD');
  });

  it('reads its clock from ITAPI_NOW, and refuses one that is not a date', () => {
    const env = { ITAPI_MODELS_JSON: JSON.stringify(FILE) };
    expect(loadCatalog({ ...env, ITAPI_NOW: '2027-01-14' }).get('old')!.routes[0].model).toBe('new-upstream');
    expect(loadCatalog({ ...env, ITAPI_NOW: '2027-01-13T23:59:59Z' }).get('old')!.routes[0].model).toBe('old-upstream');
    expect(() => loadCatalog({ ...env, ITAPI_NOW: 'tomorrow' })).toThrow(CatalogError);
  });

  it('reports the routes within 30 days of their shutdown, and those past it', () => {
    const file: CatalogFile = {
      models: {
        ...FILE.models,
        far: model('f', [1, 1], { shutdown_date: '2027-03-01', successor: 'new' }),
        past: model('p', [1, 1], { shutdown_date: '2026-11-01', successor: 'new' }),
      },
    };
    const report = parseCatalog(file, 'test', { now: at('2026-12-15') }).shutdowns(30);
    expect(report).toEqual([
      { model: 'past', route: 'mock:p', shutdownDate: '2026-11-01', daysLeft: -44, successor: 'new' },
      { model: 'old', route: 'mock:old-upstream', shutdownDate: '2027-01-14', daysLeft: 30, successor: 'new' },
    ]);
    expect(parseCatalog(file, 'test', { now: at('2026-12-14') }).shutdowns(30).map((s) => s.model)).toEqual(['past']);
  });

  it('keeps the dates and successors when the mock replaces every route (npm start without provider keys)', () => {
    const mocked = parseCatalog(FILE, 'test', { now: at('2027-02-01') }).withMockRoutes();
    expect(mocked.get('old')).toMatchObject({ routes: [{ provider: 'mock', model: 'new' }], servedBy: 'new' });
    expect(mocked.shutdowns(30)).toHaveLength(1);
  });
});

describe('the built-in catalog’s dates', () => {
  const catalog = (day: string) => parseCatalog(DEFAULT_CATALOG, 'default', { now: at(day) });

  it('carries OpenAI’s published shutdowns: gpt-5 family on 2026-12-11, gpt-4o and gpt-4o-mini on 2027-01-14', () => {
    const today = catalog('2026-12-05');
    expect(today.get('gpt-4o')).toMatchObject({ shutdownDate: '2027-01-14', successor: 'gpt-6.1-sol' });
    expect(today.get('gpt-4o-mini')).toMatchObject({ shutdownDate: '2027-01-14', successor: 'gpt-6-luna' });
    for (const [id, successor] of [
      ['gpt-5', 'gpt-6.1-sol'],
      ['gpt-5-mini', 'gpt-6.1-terra'],
      ['gpt-5-nano', 'gpt-6-luna'],
    ]) {
      expect(today.get(id)).toMatchObject({ shutdownDate: '2026-12-11', successor });
    }
    // Every successor is itself served with no announced date.
    for (const id of ['gpt-6.1-sol', 'gpt-6.1-terra', 'gpt-6-luna']) expect(today.get(id)!.shutdownDate).toBeNull();
  });

  it('routes the original design’s gpt-4o to its successor from 2027-01-14, at the successor’s prices', () => {
    const after = catalog('2027-01-14');
    const gpt4o = after.get('gpt-4o')!;
    expect(gpt4o.routes.map((r) => r.model)).toEqual(['gpt-6.1-sol']);
    expect(gpt4o.price).toEqual(after.get('gpt-6.1-sol')!.price);
    expect(after.get('gpt-4o-mini')!.routes.map((r) => r.model)).toEqual(['gpt-6-luna']);
    // Every model of the design still answers after every published date.
    const later = catalog('2027-12-31');
    for (const id of Object.keys(DEFAULT_CATALOG.models)) expect(later.get(id)).toBeDefined();
  });

  it('warns 30 days ahead: on 2026-12-05 the gpt-5 routes are due, gpt-4o not yet', () => {
    expect(catalog('2026-12-05').shutdowns().map((s) => s.model)).toEqual(['gpt-5', 'gpt-5-mini', 'gpt-5-nano']);
    expect(catalog('2026-12-15').shutdowns().map((s) => `${s.model}:${s.daysLeft}`)).toEqual(
      expect.arrayContaining(['gpt-5:-4', 'gpt-4o:30', 'gpt-4o-mini:30']),
    );
  });
});

describe('a retired route, served', () => {
  let gw: TestGateway;
  let acct: TestAccount;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    upstream = await startUpstream((_req, body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify(completionBody(body.model, `served by ${body.model}`, { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100 })),
      );
    });
    const route = (upstreamModel: string, extra: Record<string, string> = {}) => ({ provider: 'openai-compatible' as const, base_url: upstream.url, model: upstreamModel, ...extra });
    const file: CatalogFile = {
      models: {
        old: { ...model('x', [2.5, 10]), routes: [route('old-upstream', { shutdown_date: '2027-01-14', successor: 'new' })] },
        new: { ...model('x', [2, 8]), routes: [route('new-upstream')] },
      },
    };
    gw = await startTestGateway({ catalog: loadCatalog({ ITAPI_MODELS_JSON: JSON.stringify(file), ITAPI_NOW: '2027-01-20' }) });
    acct = await createAccount(gw, { creditsMicroUsd: 10_000_000 });
  });
  afterAll(async () => {
    await gw.stop();
    await upstream.close();
  });

  it('answers under the id asked for, from the successor’s upstream, and bills the successor’s prices', async () => {
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: 'old', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 }).withResponse();
    expect(data.model).toBe('old');
    expect(data.choices[0].message.content).toBe('served by new-upstream');
    expect(response.headers.get('x-itapi-route')).toBe('openai-compatible:new-upstream');
    expect(upstream.requests.map((r) => r.model)).toEqual(['new-upstream']);
    await gw.gateway.background.drain();
    const [entry] = await gw.gateway.stores.usage.all(acct.accountId);
    // 1,000 prompt tokens at $2/M and 100 output tokens at $8/M (the successor's), not $2.50 and $10.
    expect(entry).toMatchObject({ model: 'old', route: 'openai-compatible:new-upstream', amountMicroUsd: -(2000 + 800) });
  });

  it('GET /v1/models/{id} shows where the id routes and until when; the list carries shutdown_date', async () => {
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
    const old = (await client.models.retrieve('old')) as unknown as Record<string, unknown>;
    expect(old).toEqual({ id: 'old', object: 'model', created: expect.any(Number), owned_by: 'test', shutdown_date: null, itapi: { routes: ['openai-compatible:new-upstream'], successor: null } });
    const listed: Array<Record<string, unknown>> = [];
    for await (const m of client.models.list()) listed.push(m as unknown as Record<string, unknown>);
    expect(listed.map((m) => [m.id, m.shutdown_date])).toEqual([
      ['old', null],
      ['new', null],
    ]);
  });
});

describe('GET /v1/models before a shutdown', () => {
  let gw: TestGateway;
  let acct: TestAccount;
  beforeAll(async () => {
    gw = await startTestGateway({ catalog: parseCatalog(DEFAULT_CATALOG, 'default', { now: at('2026-12-05') }).withMockRoutes() });
    acct = await createAccount(gw);
  });
  afterAll(() => gw.stop());

  it('answers gpt-4o with its shutdown date, its route and its successor', async () => {
    const res = await fetch(`${gw.baseUrl}/models/gpt-4o`, { headers: { authorization: `Bearer ${acct.key}` } });
    expect(await res.json()).toMatchObject({ id: 'gpt-4o', shutdown_date: '2027-01-14', itapi: { routes: ['mock:gpt-4o'], successor: 'gpt-6.1-sol' } });
    const list = (await (await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${acct.key}` } })).json()) as { data: Array<{ id: string; shutdown_date: string | null }> };
    expect(list.data.find((m) => m.id === 'gpt-5')!.shutdown_date).toBe('2026-12-11');
    expect(list.data.find((m) => m.id === 'claude-sonnet-4-6')!.shutdown_date).toBeNull();
  });
});

// Catalog is exported for users who build one in code; the options are part of its constructor.
test('a Catalog built in code takes the clock as an option', () => {
  expect(new Catalog(FILE, { now: at('2027-01-14') }).get('old')!.routes[0].model).toBe('new-upstream');
});
