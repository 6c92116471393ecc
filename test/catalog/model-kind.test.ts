import { CatalogError, parseCatalog, type CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';

const chat = {
  owned_by: 'test',
  pricing: { input_per_mtok: 1, output_per_mtok: 2 },
  context_window: 1000,
  max_output_tokens: 100,
  routes: [{ provider: 'mock' as const, model: 'm' }],
};
const embedding = {
  kind: 'embedding' as const,
  owned_by: 'test',
  pricing: { input_per_mtok: 0.02 },
  context_window: 8191,
  routes: [{ provider: 'openai-compatible' as const, model: 'text-embedding-3-small' }],
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

describe('catalog: model kinds', () => {
  it('defaults to chat, and reads an embedding model without an output price or output limit', () => {
    const catalog = parseCatalog({ models: { c: chat, e: { ...embedding, dimensions: 1536 } } }, 'test');
    expect(catalog.get('c')).toMatchObject({ kind: 'chat', maxOutputTokens: 100 });
    expect(catalog.get('c')!.dimensions).toBeUndefined();
    expect(catalog.get('e')).toMatchObject({ kind: 'embedding', maxOutputTokens: 0, dimensions: 1536, price: { inputPerToken: 20, outputPerToken: 0 } });
  });

  it('ignores max_output_tokens on an embedding model: it holds for no output', () => {
    expect(parseCatalog({ models: { e: { ...embedding, max_output_tokens: 500 } } }, 'test').get('e')!.maxOutputTokens).toBe(0);
  });

  it('still requires the output price and limit of a chat model, naming each field', () => {
    const { max_output_tokens: _limit, ...noLimit } = chat;
    const message = problems({ models: { c: { ...noLimit, pricing: { input_per_mtok: 1 } } } });
    expect(message).toContain('models.c.pricing.output_per_mtok: Required');
    expect(message).toContain('models.c.max_output_tokens: Required');
  });

  it('refuses an embedding model on a provider without embeddings, and dimensions on a chat model', () => {
    expect(problems({ models: { e: { ...embedding, routes: [{ provider: 'anthropic', model: 'claude' }] } } })).toContain(
      'models.e.routes.0.provider: cannot serve an embedding model',
    );
    expect(problems({ models: { c: { ...chat, dimensions: 10 } } })).toContain('models.c.dimensions: is only for models of kind "embedding"');
    expect(problems({ models: { e: { ...embedding, kind: 'rerank' } } })).toContain('models.e.kind');
  });

  it('keeps kind and dimensions when every route is replaced by the mock (npm start without provider keys)', () => {
    const catalog = parseCatalog(DEFAULT_CATALOG, 'default').withMockRoutes();
    expect(catalog.get('text-embedding-3-small')).toMatchObject({ kind: 'embedding', dimensions: 1536, maxOutputTokens: 0, routes: [{ provider: 'mock' }] });
    expect(catalog.get('text-embedding-3-large')).toMatchObject({ kind: 'embedding', dimensions: 3072 });
    expect(catalog.get('gpt-4o')).toMatchObject({ kind: 'chat', maxOutputTokens: 16384 });
  });

  it('ships OpenAI’s embedding models at their list prices ($0.02 and $0.13 per million input tokens)', () => {
    const file: CatalogFile = DEFAULT_CATALOG;
    expect(file.models['text-embedding-3-small']).toMatchObject({ kind: 'embedding', pricing: { input_per_mtok: 0.02 } });
    expect(file.models['text-embedding-3-large']).toMatchObject({ kind: 'embedding', pricing: { input_per_mtok: 0.13 } });
  });
});
