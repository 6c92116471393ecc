import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_CATALOG } from './defaults';

export const PROVIDERS = ['openai-compatible', 'anthropic', 'bedrock', 'mock'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

const routeSchema = z
  .object({
    provider: z.enum(PROVIDERS),
    /** Upstream base URL for `openai-compatible` and `anthropic`; default: the provider's public API. */
    base_url: z.string().url().regex(/^https?:\/\//, 'must be an http(s) URL').optional(),
    /** Entry of the provider-keys secret (locally: ITAPI_SECRET_<NAME>). */
    secret: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
    /** The upstream's own model id. */
    model: z.string().min(1),
    /** AWS region, for `bedrock`. */
    region: z.string().optional(),
  })
  .strict();

const modelSchema = z
  .object({
    owned_by: z.string().min(1),
    created: z.number().int().nonnegative().optional(),
    pricing: z
      .object({
        input_per_mtok: z.number().nonnegative(),
        output_per_mtok: z.number().nonnegative(),
        cached_input_per_mtok: z.number().nonnegative().optional(),
      })
      .strict(),
    context_window: z.number().int().positive(),
    max_output_tokens: z.number().int().positive(),
    routes: z.array(routeSchema).min(1),
  })
  .strict();

export const catalogFileSchema = z.object({ models: z.record(z.string().min(1), modelSchema) }).strict();
export type CatalogFile = z.infer<typeof catalogFileSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;

/** Prices as integer nano-USD per token: $2.50 per million tokens is 2,500 nUSD a token. */
export interface PriceNanoUsd {
  inputPerToken: number;
  outputPerToken: number;
  cachedInputPerToken: number;
}

export interface ModelEntry {
  id: string;
  ownedBy: string;
  created: number;
  price: PriceNanoUsd;
  contextWindow: number;
  maxOutputTokens: number;
  routes: RouteConfig[];
}

export class Catalog {
  private readonly models: Map<string, ModelEntry>;

  constructor(file: CatalogFile) {
    this.models = new Map(
      Object.entries(file.models).map(([id, m]) => [
        id,
        {
          id,
          ownedBy: m.owned_by,
          created: m.created ?? CATALOG_EPOCH_S,
          price: {
            inputPerToken: perTokenNanoUsd(m.pricing.input_per_mtok),
            outputPerToken: perTokenNanoUsd(m.pricing.output_per_mtok),
            cachedInputPerToken: perTokenNanoUsd(m.pricing.cached_input_per_mtok ?? m.pricing.input_per_mtok),
          },
          contextWindow: m.context_window,
          maxOutputTokens: m.max_output_tokens,
          routes: m.routes,
        },
      ]),
    );
  }

  get(id: string): ModelEntry | undefined {
    return this.models.get(id);
  }

  list(): ModelEntry[] {
    return [...this.models.values()];
  }

  /** Every route of every model that uses the given provider. */
  routesOf(provider: ProviderName): Array<{ model: string; route: RouteConfig }> {
    return this.list().flatMap((m) => m.routes.filter((r) => r.provider === provider).map((route) => ({ model: m.id, route })));
  }

  /** The same models, each served only by the offline `mock` provider. */
  withMockRoutes(): Catalog {
    const file: CatalogFile = { models: {} };
    for (const m of this.models.values()) {
      file.models[m.id] = {
        owned_by: m.ownedBy,
        created: m.created,
        pricing: {
          input_per_mtok: m.price.inputPerToken / 1000,
          output_per_mtok: m.price.outputPerToken / 1000,
          cached_input_per_mtok: m.price.cachedInputPerToken / 1000,
        },
        context_window: m.contextWindow,
        max_output_tokens: m.maxOutputTokens,
        routes: [{ provider: 'mock', model: m.id }],
      };
    }
    return new Catalog(file);
  }
}

/** 2024-05-13, the date gpt-4o was announced; models without `created` report it. */
const CATALOG_EPOCH_S = 1715558400;

function perTokenNanoUsd(perMillionUsd: number): number {
  return Math.round(perMillionUsd * 1000);
}

export class CatalogError extends Error {
  override name = 'CatalogError';
}

/** Validates a catalog document; the error names the source and every offending field. */
export function parseCatalog(doc: unknown, source: string): Catalog {
  const result = catalogFileSchema.safeParse(doc);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `  ${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new CatalogError(`Invalid model catalog in ${source}:\n${problems.join('\n')}`);
  }
  return new Catalog(result.data);
}

export function loadCatalogFile(path: string): Catalog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CatalogError(`Cannot read the model catalog ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CatalogError(`The model catalog ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseCatalog(doc, path);
}

/** Where an operator's own catalog comes from (`ITAPI_MODELS` or `ITAPI_MODELS_JSON`), or undefined for the built-in one. */
export function explicitCatalogSource(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.ITAPI_MODELS) return env.ITAPI_MODELS;
  if (env.ITAPI_MODELS_JSON) return 'ITAPI_MODELS_JSON';
  return undefined;
}

/**
 * The catalog in force: `ITAPI_MODELS` (a file path) or `ITAPI_MODELS_JSON` (the document itself,
 * as the CDK stack passes it), else the defaults.
 */
export function loadCatalog(env: NodeJS.ProcessEnv = process.env): Catalog {
  if (env.ITAPI_MODELS) return loadCatalogFile(env.ITAPI_MODELS);
  if (env.ITAPI_MODELS_JSON) {
    let doc: unknown;
    try {
      doc = JSON.parse(env.ITAPI_MODELS_JSON);
    } catch (err) {
      throw new CatalogError(`ITAPI_MODELS_JSON is not valid JSON: ${(err as Error).message}`);
    }
    return parseCatalog(doc, 'ITAPI_MODELS_JSON');
  }
  return parseCatalog(DEFAULT_CATALOG, 'the default catalog');
}
