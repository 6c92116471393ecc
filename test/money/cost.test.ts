import { CatalogError, parseCatalog, type CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { costOf, NO_USAGE, type BilledUsage } from '../../lambda/money/cost';
import { computeHold } from '../../lambda/money/hold';

/** The price of a usage (issue 17): the pure function every settlement calls, and the catalog fields it reads. */

const route = { provider: 'openai-compatible' as const, base_url: 'http://127.0.0.1:1/v1', model: 'up' };
function model(pricing: CatalogFile['models'][string]['pricing'], extra: Partial<CatalogFile['models'][string]> = {}) {
  return parseCatalog({ models: { m: { owned_by: 'test', pricing, context_window: 10_000, max_output_tokens: 1000, routes: [route], ...extra } } }, 'test').get('m')!;
}
const usage = (u: Partial<BilledUsage>): BilledUsage => ({ ...NO_USAGE, ...u });

describe('costOf', () => {
  const m = model({
    input_per_mtok: 2,
    output_per_mtok: 8,
    cached_input_per_mtok: 0.5,
    cache_write_per_mtok: 2.5,
    cache_write_1h_per_mtok: 4,
    service_tiers: { priority: { input_per_mtok: 4, output_per_mtok: 16 } },
    server_tools: { web_search: 0.01 },
    long_context: { above_input_tokens: 1000, input_per_mtok: 3, output_per_mtok: 12 },
  });

  it('prices each class apart and reasoning once (it is inside the output)', () => {
    const u = usage({ promptTokens: 1000, cachedTokens: 100, cacheWriteTokens: 200, cacheWrite1hTokens: 300, completionTokens: 50, reasoningTokens: 40, serverToolCalls: { web_search: 2 } });
    expect(costOf(u, m.price)).toBe(Math.ceil((400 * 2000 + 100 * 500 + 200 * 2500 + 300 * 4000 + 50 * 8000 + 2 * 10_000_000) / 1000));
  });

  it('prices the tier answered, else the tier requested; an unpriced tier at base prices', () => {
    const u = usage({ promptTokens: 100, completionTokens: 10 });
    const base = Math.ceil((100 * 2000 + 10 * 8000) / 1000);
    const priority = Math.ceil((100 * 4000 + 10 * 16000) / 1000);
    expect(costOf({ ...u, serviceTier: 'priority' }, m.price)).toBe(priority);
    expect(costOf(u, m.price, 'priority')).toBe(priority);
    expect(costOf({ ...u, serviceTier: 'default' }, m.price, 'priority')).toBe(base);
    expect(costOf(u, m.price, 'auto')).toBe(base);
    // A tier's cached input defaults to its input price; its cache writes keep the base ratio (2.5 / 2 of input).
    expect(costOf(usage({ promptTokens: 100, cachedTokens: 100 }), m.price, 'priority')).toBe(400);
    expect(costOf(usage({ promptTokens: 100, cacheWriteTokens: 100 }), m.price, 'priority')).toBe(500);
  });

  it('prices a prompt above the long-context threshold wholly at long-context prices, and one at it at base prices', () => {
    expect(costOf(usage({ promptTokens: 1001, completionTokens: 10 }), m.price)).toBe(Math.ceil((1001 * 3000 + 10 * 12000) / 1000));
    expect(costOf(usage({ promptTokens: 1000, completionTokens: 10 }), m.price)).toBe(Math.ceil((1000 * 2000 + 10 * 8000) / 1000));
  });

  it('never bills a class beyond the prompt (a provider reporting more reads than prompt tokens)', () => {
    expect(costOf(usage({ promptTokens: 100, cachedTokens: 500, cacheWriteTokens: 50 }), m.price)).toBe(50);
  });
});

describe('catalog pricing fields', () => {
  it('defaults unpriced cache writes to Anthropic multipliers on Claude models (Anthropic or Bedrock), else to the input price', () => {
    const claudeOnBedrock = model({ input_per_mtok: 3, output_per_mtok: 15 }, { owned_by: 'x', routes: [{ provider: 'bedrock', region: 'us-east-1', model: 'anthropic.claude-sonnet-4-6' }] });
    expect(claudeOnBedrock.price).toMatchObject({ cacheWritePerToken: 3750, cacheWrite1hPerToken: 6000 });
    expect(model({ input_per_mtok: 3, output_per_mtok: 15 }).price).toMatchObject({ cacheWritePerToken: 3000, cacheWrite1hPerToken: 3000 });
  });

  it('refuses unknown server tools and malformed tiers, naming the field', () => {
    const bad = (pricing: object) => () => parseCatalog({ models: { m: { owned_by: 't', pricing: { input_per_mtok: 1, output_per_mtok: 1, ...pricing }, context_window: 10, max_output_tokens: 1, routes: [route] } } }, 'test');
    expect(bad({ server_tools: { bash: 1 } })).toThrow(CatalogError);
    expect(bad({ service_tiers: { priority: { input_per_mtok: 1 } } })).toThrow(/service_tiers\.priority\.output_per_mtok/);
    expect(bad({ long_context: { input_per_mtok: 1, output_per_mtok: 1 } })).toThrow(/long_context\.above_input_tokens/);
  });

  it('built-in Claude models price cache writes, web search and web fetch; OpenAI models their priority tier; embeddings count with cl100k_base', () => {
    const catalog = parseCatalog(DEFAULT_CATALOG, 'defaults');
    for (const id of ['claude-sonnet-4-6', 'claude-opus-4-8', 'claude-haiku-4-5']) {
      const p = catalog.get(id)!.price;
      expect(p.cacheWritePerToken).toBe(p.inputPerToken * 1.25);
      expect(p.cacheWrite1hPerToken).toBe(p.inputPerToken * 2);
      expect(p.serverToolPerCall).toEqual({ web_search: 10_000_000, web_fetch: 0 });
    }
    expect(catalog.get('gpt-4o')!.price.serviceTiers.priority).toMatchObject({ inputPerToken: 4250, outputPerToken: 17000, cachedInputPerToken: 2125 });
    expect(catalog.get('gpt-4o-mini')!.price.serviceTiers.priority).toMatchObject({ inputPerToken: 250, outputPerToken: 1000, cachedInputPerToken: 125 });
    expect(catalog.get('text-embedding-3-small')!.tokenizer).toBe('cl100k_base');
    expect(catalog.get('gpt-4o')!.tokenizer).toBe('o200k_base');
    // The mock catalog keeps every price.
    expect(catalog.withMockRoutes().get('claude-sonnet-4-6')!.price).toEqual(catalog.get('claude-sonnet-4-6')!.price);
  });
});

describe('computeHold', () => {
  const m = model({ input_per_mtok: 2, output_per_mtok: 8, cache_write_1h_per_mtok: 4, service_tiers: { priority: { input_per_mtok: 4, output_per_mtok: 16 } }, server_tools: { web_search: 0.01 } });

  it('prices the prompt at the requested tier, or at the 1-hour write price', () => {
    expect(computeHold(m, { promptTokens: 100, outputLimit: 10, billing: { serviceTier: 'priority' } }).holdMicroUsd).toBe(Math.ceil((100 * 4000 + 10 * 16000) / 1000));
    expect(computeHold(m, { promptTokens: 100, outputLimit: 10, billing: { cacheWrite1h: true } }).holdMicroUsd).toBe(Math.ceil((100 * 4000 + 10 * 8000) / 1000));
  });

  it('holds an input of unknown size at the context window for money, not in the minute', () => {
    const hold = computeHold(m, { promptTokens: 100, outputLimit: 10, billing: { unknownSizeInputs: 1 } });
    expect(hold.holdMicroUsd).toBe(Math.ceil((10_000 * 2000 + 10 * 8000) / 1000));
    expect(hold.rateTokens).toBe(110);
    expect(hold.promptMicroUsd).toBe(200);
  });
});
