import OpenAI from 'openai';
import { parseCatalog, type CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { completionBody, startUpstream } from '../support/upstream';

/**
 * The built-in catalog (issue 11, item 9): no route to a model its provider has retired, and the
 * model ids the original design names still answer, as aliases of their current successors.
 */

/** Upstream model ids their providers no longer serve, with the day they stopped. */
const RETIRED_UPSTREAM_MODELS: Record<string, string> = {
  'claude-3-5-sonnet-20241022': '2025-10-22 (Anthropic)',
  'claude-3-opus-20240229': '2026-01-05 (Anthropic)',
  'claude-sonnet-4-20250514': '2026-06-15 (Anthropic)',
  'claude-opus-4-20250514': '2026-06-15 (Anthropic)',
  'gemini-2.0-flash': '2026-06-01 (Google)',
  'gemini-2.5-flash': '2026-12-01 (Google)',
  'gemini-2.5-pro': '2026-12-01 (Google)',
  'deepseek-chat': '2026-07-24 (DeepSeek retired the name)',
  'deepseek-reasoner': '2026-07-24 (DeepSeek retired the name)',
};

const SEED_IDS = ['gpt-4o', 'gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'claude-3-opus-20240229', 'deepseek-chat', 'gemini-2.0-flash'];

describe('the built-in catalog', () => {
  it('routes no model to an upstream model its provider has retired', () => {
    const routed = Object.entries(DEFAULT_CATALOG.models).flatMap(([id, m]) => m.routes.map((r) => ({ id, upstream: r.model })));
    expect(routed.filter((r) => RETIRED_UPSTREAM_MODELS[r.upstream]).map((r) => `${r.id} -> ${r.upstream}, retired ${RETIRED_UPSTREAM_MODELS[r.upstream]}`)).toEqual([]);
  });

  it('keeps every model id of the original design, and adds current ones', () => {
    const ids = Object.keys(DEFAULT_CATALOG.models);
    expect(ids).toEqual(expect.arrayContaining(SEED_IDS));
    expect(ids.length).toBeGreaterThan(SEED_IDS.length);
    expect(() => parseCatalog(DEFAULT_CATALOG, 'the default catalog')).not.toThrow();
  });

  it('bills an alias at the prices and limits of the model that serves it', () => {
    for (const [alias, current] of [
      ['claude-3-5-sonnet-20241022', 'claude-sonnet-4-6'],
      ['claude-3-opus-20240229', 'claude-opus-4-8'],
      ['deepseek-chat', 'deepseek-v4-flash'],
      ['gemini-2.0-flash', 'gemini-3.5-flash-lite'],
    ]) {
      expect({ alias, ...DEFAULT_CATALOG.models[alias] }).toEqual({ alias, ...DEFAULT_CATALOG.models[current] });
    }
  });
});

describe('an alias, served', () => {
  let gw: TestGateway;
  let acct: TestAccount;
  let anthropic: Awaited<ReturnType<typeof startUpstream>>;
  let compatible: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    anthropic = await startUpstream((_req, body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: 'msg_alias',
          type: 'message',
          role: 'assistant',
          model: body.model,
          content: [{ type: 'text', text: `served by ${body.model}` }],
          stop_reason: 'end_turn',
          stop_sequence: null,
          usage: { input_tokens: 5, output_tokens: 3 },
        }),
      );
    });
    compatible = await startUpstream((_req, body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, `served by ${body.model}`)));
    });
    // The built-in catalog as it ships, every upstream replaced by a stand-in on loopback.
    const file: CatalogFile = { models: {} };
    for (const [id, m] of Object.entries(DEFAULT_CATALOG.models)) {
      file.models[id] = {
        ...m,
        routes: m.routes.map(({ secret: _secret, ...r }) => ({ ...r, base_url: r.provider === 'anthropic' ? anthropic.url.replace(/\/v1$/, '') : compatible.url })),
      };
    }
    gw = await startTestGateway({ catalog: parseCatalog(file, 'test') });
    acct = await createAccount(gw);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([anthropic.close(), compatible.close()]);
  });

  it('is listed by its own id in GET /v1/models', async () => {
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(expect.arrayContaining(SEED_IDS));
  });

  it.each([
    ['claude-3-5-sonnet-20241022', 'anthropic:claude-sonnet-4-6'],
    ['claude-3-opus-20240229', 'anthropic:claude-opus-4-8'],
    ['deepseek-chat', 'openai-compatible:deepseek-v4-flash'],
    ['gemini-2.0-flash', 'openai-compatible:gemini-3.5-flash-lite'],
  ])('%s answers from %s, named in x-itapi-route', async (alias, route) => {
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: alias, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 20 }).withResponse();
    const upstreamModel = route.split(':')[1];
    expect(response.headers.get('x-itapi-route')).toBe(route);
    expect(data.choices[0].message.content).toBe(`served by ${upstreamModel}`);
    // The client sees the id it asked for.
    expect(data.model).toBe(alias);
  });
});
