import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { zodOnFirstUse } from '../contract/zod';
import { DEFAULT_CATALOG } from './defaults';
import { catalogClock, ClockError, daysUntil, isCalendarDate, SHUTDOWN_WARNING_DAYS, utcDay, type RouteShutdown } from './lifecycle';

export { SHUTDOWN_WARNING_DAYS, type RouteShutdown } from './lifecycle';

export const PROVIDERS = ['openai-compatible', 'anthropic', 'bedrock', 'mock'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

/** What a model serves: chat (chat completions, responses, messages) or embeddings (`POST /v1/embeddings`). */
export const MODEL_KINDS = ['chat', 'embedding'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/** The providers that can serve an embedding model (Anthropic has no embeddings API). */
export const EMBEDDING_PROVIDERS: readonly ProviderName[] = ['openai-compatible', 'bedrock', 'mock'];

/** Server tools a provider runs and bills per call, by the gateway's name for them. */
export const SERVER_TOOLS = ['web_search', 'web_fetch', 'code_execution'] as const;
export type ServerTool = (typeof SERVER_TOOLS)[number];

/** Tokenizers the gateway ships (gpt-tokenizer's encodings). */
export const TOKENIZERS = ['o200k_base', 'cl100k_base'] as const;
export type TokenizerName = (typeof TOKENIZERS)[number];

/** The catalog file's schemas; built only when a catalog file is checked (the built-in one is not, at load). */
function buildCatalogSchemas() {
  const { z } = zodOnFirstUse();
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
      /**
       * Where an `openai-compatible` upstream takes the output limit.
       * @default `max_completion_tokens` for api.openai.com, else `max_tokens`
       */
      output_limit_field: z.enum(['max_tokens', 'max_completion_tokens']).optional(),
      /** The provider's shutdown day of this route (UTC `YYYY-MM-DD`); from that day `successor`'s routes serve instead. */
      shutdown_date: z.string().refine(isCalendarDate, 'must be a calendar date YYYY-MM-DD').optional(),
      /** The id of another model of this catalog whose routes replace this one from `shutdown_date` on. */
      successor: z.string().min(1).optional(),
    })
    .strict()
    .superRefine((r, ctx) => {
      if (r.successor !== undefined && r.shutdown_date === undefined) ctx.addIssue({ code: 'custom', path: ['shutdown_date'], message: 'is required with successor' });
    });

  const usdPerMtok = () => z.number().nonnegative();

  /** A service tier's prices (`service_tier: "priority"`, `"flex"`): what the tier bills instead of the base prices. */
  const tierPricingSchema = z
    .object({
      input_per_mtok: usdPerMtok(),
      output_per_mtok: usdPerMtok(),
      /** @default the tier's input price */
      cached_input_per_mtok: usdPerMtok().optional(),
    })
    .strict();

  /**
   * Prices above a prompt size, as some providers publish them: a request whose prompt (every
   * input token, cached or not) exceeds `above_input_tokens` is billed wholly at these prices.
   */
  const longContextSchema = z
    .object({
      above_input_tokens: z.number().int().positive(),
      input_per_mtok: usdPerMtok(),
      output_per_mtok: usdPerMtok(),
      cached_input_per_mtok: usdPerMtok().optional(),
      cache_write_per_mtok: usdPerMtok().optional(),
      cache_write_1h_per_mtok: usdPerMtok().optional(),
    })
    .strict();

  const pricingSchema = z
    .object({
      input_per_mtok: usdPerMtok(),
      /** Required for chat models; embedding models produce no output tokens (default 0). */
      output_per_mtok: usdPerMtok().optional(),
      /** Cache reads. @default the input price */
      cached_input_per_mtok: usdPerMtok().optional(),
      /** 5-minute cache writes. @default 1.25 × input on Anthropic-family models, else the input price */
      cache_write_per_mtok: usdPerMtok().optional(),
      /** 1-hour cache writes. @default 2 × input on Anthropic-family models, else the input price */
      cache_write_1h_per_mtok: usdPerMtok().optional(),
      /** USD per call of a server tool; a tool the model does not price here is refused with a 400. */
      server_tools: z.record(z.enum(SERVER_TOOLS), z.number().nonnegative()).optional(),
      /** Prices per service tier the client may ask for; a tier not named here (but `auto`, `default`) is refused. */
      service_tiers: z.record(z.string().regex(/^[a-z_]+$/), tierPricingSchema).optional(),
      long_context: longContextSchema.optional(),
    })
    .strict();

  const modelSchema = z
    .object({
      /** @default chat; an `embedding` model serves only `POST /v1/embeddings` and is priced per input token. */
      kind: z.enum(MODEL_KINDS).optional(),
      owned_by: z.string().min(1),
      created: z.number().int().nonnegative().optional(),
      pricing: pricingSchema,
      context_window: z.number().int().positive(),
      /** Required for chat models; not used by embedding models. */
      max_output_tokens: z.number().int().positive().optional(),
      /** Embedding models only: the length of the model's vectors; a request asking for more `dimensions` gets a 400. */
      dimensions: z.number().int().positive().optional(),
      /**
       * How the model counts an image: `"anthropic"` (pixels / 750, at most 1,600) or OpenAI's
       * 512-px tiles, `{"base": 85, "tile": 170}` (gpt-4o-mini: 2833 and 5667).
       * @default anthropic for Claude models, else OpenAI's tiles at 85 and 170
       */
      image_tokens: z
        .union([z.literal('anthropic'), z.object({ base: z.number().int().nonnegative(), tile: z.number().int().nonnegative() }).strict()])
        .optional(),
      /**
       * The tokenizer the upstream counts with, for holds and estimates.
       * @default cl100k_base for OpenAI's text-embedding-3 and ada-002 upstream models, else o200k_base
       */
      tokenizer: z.enum(TOKENIZERS).optional(),
      routes: z.array(routeSchema).min(1),
    })
    .strict()
    .superRefine((m, ctx) => {
      if (m.kind === 'embedding') return checkEmbeddingRoutes(m.routes, ctx);
      // Chat models keep the fields they always needed; zod's own words for a missing field.
      if (m.pricing.output_per_mtok === undefined) ctx.addIssue({ code: 'custom', path: ['pricing', 'output_per_mtok'], message: 'Required' });
      if (m.max_output_tokens === undefined) ctx.addIssue({ code: 'custom', path: ['max_output_tokens'], message: 'Required' });
      if (m.dimensions !== undefined) ctx.addIssue({ code: 'custom', path: ['dimensions'], message: 'is only for models of kind "embedding"' });
    });

  const catalogFileSchema = z
    .object({ models: z.record(z.string().min(1), modelSchema) })
    .strict()
    .superRefine((file, ctx) => checkSuccessors(file.models, ctx));
  return { routeSchema, catalogFileSchema };
}

let catalogSchemas: ReturnType<typeof buildCatalogSchemas> | undefined;

/** The catalog file's schema, built on first use. */
export function catalogFileSchema(): ReturnType<typeof buildCatalogSchemas>['catalogFileSchema'] {
  return (catalogSchemas ??= buildCatalogSchemas()).catalogFileSchema;
}

function checkEmbeddingRoutes(routes: Array<{ provider: ProviderName }>, ctx: z.RefinementCtx): void {
  routes.forEach((route, i) => {
    if (!EMBEDDING_PROVIDERS.includes(route.provider)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'provider'], message: `cannot serve an embedding model (use one of ${EMBEDDING_PROVIDERS.join(', ')})` });
    }
  });
}

/** Every successor is another model of the catalog, of the same kind, and no chain of successors comes back. */
function checkSuccessors(models: Record<string, { kind?: ModelKind; routes: Array<{ successor?: string }> }>, ctx: z.RefinementCtx): void {
  const next = (id: string) => (models[id]?.routes ?? []).flatMap((r) => (r.successor !== undefined && models[r.successor] ? [r.successor] : []));
  for (const [id, m] of Object.entries(models)) {
    m.routes.forEach((route, i) => {
      const successor = route.successor;
      if (successor === undefined) return;
      const path = ['models', id, 'routes', i, 'successor'];
      const target = models[successor];
      if (!target) return ctx.addIssue({ code: 'custom', path, message: `'${successor}' is not a model of this catalog` });
      if (successor === id) return ctx.addIssue({ code: 'custom', path, message: 'a model cannot succeed itself' });
      if ((target.kind ?? 'chat') !== (m.kind ?? 'chat')) return ctx.addIssue({ code: 'custom', path, message: `'${successor}' is of another kind` });
      // Depth-first from the successor: reaching `id` again is a loop that would never end once its dates pass.
      const seen = new Set<string>();
      const stack = [successor];
      while (stack.length) {
        const at = stack.pop()!;
        if (at === id) return ctx.addIssue({ code: 'custom', path, message: `successors loop back to '${id}'` });
        if (seen.has(at)) continue;
        seen.add(at);
        stack.push(...next(at));
      }
    });
  }
}
export type CatalogFile = z.infer<ReturnType<typeof buildCatalogSchemas>['catalogFileSchema']>;
export type RouteConfig = z.infer<ReturnType<typeof buildCatalogSchemas>['routeSchema']>;
/** A model's prices as the catalog file states them, in USD per million tokens. */
export type CatalogPricing = CatalogFile['models'][string]['pricing'];

/** Per-token prices of one class of tokens each, as integer nano-USD: $2.50 per million tokens is 2,500 nUSD a token. */
export interface TokenPricesNanoUsd {
  inputPerToken: number;
  outputPerToken: number;
  /** Cache reads. */
  cachedInputPerToken: number;
  /** 5-minute cache writes. */
  cacheWritePerToken: number;
  cacheWrite1hPerToken: number;
}

/** A model's prices: the base token prices, and what a tier, a long prompt or a server tool bills instead or besides. */
export interface PriceNanoUsd extends TokenPricesNanoUsd {
  /** Nano-USD per call of each server tool the model prices; a tool absent here is refused. */
  serverToolPerCall: Partial<Record<ServerTool, number>>;
  /** Token prices per service tier the model prices (`priority`, `flex`). */
  serviceTiers: Record<string, TokenPricesNanoUsd>;
  /** Base-tier prices for a prompt of more than `aboveInputTokens` tokens. */
  longContext?: TokenPricesNanoUsd & { aboveInputTokens: number };
}

/** Anthropic's published cache-write multipliers of the input price: 5-minute writes 1.25×, 1-hour writes 2×. */
export const ANTHROPIC_CACHE_WRITE_MULTIPLIER = { fiveMinutes: 1.25, oneHour: 2 } as const;

/**
 * How a model's upstream counts a prompt, for holds that stay above what it bills: its image
 * rule, and a margin on the o200k count of the text for tokenizers that count more (Claude's).
 */
export interface TokenRules {
  image: { kind: 'tiles'; base: number; tile: number } | { kind: 'anthropic' };
  /** The o200k text count is multiplied by this. */
  textMargin: number;
}

/** Claude's tokenizer counts English text up to about a fifth above o200k. */
const ANTHROPIC_TEXT_MARGIN = 1.25;

export interface ModelEntry {
  id: string;
  ownedBy: string;
  created: number;
  price: PriceNanoUsd;
  /** The tokenizer the upstream counts with (embeddings are held by it). */
  tokenizer: TokenizerName;
  contextWindow: number;
  /** 0 for embedding models: they produce no output tokens. */
  maxOutputTokens: number;
  tokenRules: TokenRules;
  routes: RouteConfig[];
  /** Set by the catalog: `embedding` for embedding models, else `chat`. Only `'embedding'` means embeddings. */
  kind?: ModelKind;
  /** Embedding models: the length of the model's vectors, when the catalog names it. */
  dimensions?: number;
  /**
   * The earliest shutdown day (UTC `YYYY-MM-DD`) among the routes serving today, or null: what
   * `GET /v1/models` answers as `shutdown_date`.
   */
  shutdownDate?: string | null;
  /** The model that moves in at `shutdownDate` (that route's `successor`), or null. */
  successor?: string | null;
  /** When a successor serves in place of the model's own first route: the successor's id, whose prices and limits apply. */
  servedBy?: string;
  /** The prices as the catalog file states them (every field it has), for the console's Models page. */
  pricingPerMtok?: CatalogPricing;
}

/** Claude, served by Anthropic or by Bedrock: Anthropic's token and cache-write rules apply. */
function anthropicFamily(m: CatalogFile['models'][string]): boolean {
  return m.owned_by === 'anthropic' || m.routes.some((r) => r.provider === 'anthropic' || (r.provider === 'bedrock' && /anthropic|claude/i.test(r.model)));
}

function tokenRulesOf(m: CatalogFile['models'][string]): TokenRules {
  const claude = m.image_tokens === 'anthropic' || (m.image_tokens === undefined && anthropicFamily(m));
  if (claude) return { image: { kind: 'anthropic' }, textMargin: ANTHROPIC_TEXT_MARGIN };
  const tiles = typeof m.image_tokens === 'object' ? m.image_tokens : { base: 85, tile: 170 };
  return { image: { kind: 'tiles', ...tiles }, textMargin: 1 };
}

export interface CatalogOptions {
  /** The clock that decides which routes have reached their `shutdown_date`. @default Date.now (`ITAPI_NOW` through loadCatalog) */
  now?: () => number;
}

/** A route serving a model today, and the model whose own route it is. */
interface ServingRoute {
  route: RouteConfig;
  owner: string;
}

export class Catalog {
  /** Each model with its own routes, as the file writes them. */
  private readonly models: Map<string, ModelEntry>;
  private readonly now: () => number;
  private readonly dated: boolean;
  /** The entries as served on one UTC day (the routes past their shutdown replaced). */
  private today?: { day: string; entries: Map<string, ModelEntry | undefined> };

  constructor(file: CatalogFile, options: CatalogOptions = {}) {
    this.now = options.now ?? Date.now;
    this.dated = Object.values(file.models).some((m) => m.routes.some((r) => r.shutdown_date !== undefined));
    this.models = new Map(
      Object.entries(file.models).map(([id, m]) => [
        id,
        {
          id,
          ownedBy: m.owned_by,
          created: m.created ?? CATALOG_EPOCH_S,
          price: priceOf(m),
          tokenizer: m.tokenizer ?? defaultTokenizer(m),
          contextWindow: m.context_window,
          maxOutputTokens: m.kind === 'embedding' ? 0 : (m.max_output_tokens ?? 0),
          tokenRules: tokenRulesOf(m),
          routes: m.routes,
          kind: m.kind ?? 'chat',
          ...(m.dimensions !== undefined && { dimensions: m.dimensions }),
          pricingPerMtok: m.pricing,
        },
      ]),
    );
  }

  /**
   * The model as served today: each route past its `shutdown_date` replaced by its successor's
   * routes (in order, themselves resolved the same way), the prices and limits of the model whose
   * route comes first. Undefined for an unknown id, and for a model whose routes have all shut
   * down with no successor.
   */
  get(id: string): ModelEntry | undefined {
    const own = this.models.get(id);
    if (!own || !this.dated) return own;
    const day = utcDay(this.now());
    if (this.today?.day !== day) this.today = { day, entries: new Map() };
    const entries = this.today.entries;
    if (!entries.has(id)) entries.set(id, this.servedOn(own, day));
    return entries.get(id);
  }

  /** Every model served today (a model shut down without a successor is left out). */
  list(): ModelEntry[] {
    return [...this.models.keys()].flatMap((id) => this.get(id) ?? []);
  }

  /** The catalog's clock (`ITAPI_NOW` in tests), in ms. */
  nowMs(): number {
    return this.now();
  }

  /** The routes whose shutdown is at most `withinDays` days away, or past (the successor serves then), earliest first. */
  shutdowns(withinDays: number = SHUTDOWN_WARNING_DAYS): RouteShutdown[] {
    const today = utcDay(this.now());
    return [...this.models.values()]
      .flatMap((m) =>
        m.routes.flatMap((r) => {
          if (r.shutdown_date === undefined) return [];
          const daysLeft = daysUntil(r.shutdown_date, today);
          return daysLeft > withinDays ? [] : [{ model: m.id, route: `${r.provider}:${r.model}`, shutdownDate: r.shutdown_date, daysLeft, successor: r.successor ?? null }];
        }),
      )
      .sort((a, b) => a.daysLeft - b.daysLeft || a.model.localeCompare(b.model));
  }

  private servedOn(own: ModelEntry, day: string): ModelEntry | undefined {
    const serving = this.servingRoutes(own.id, day, new Set());
    if (serving.length === 0) return undefined;
    const first = this.models.get(serving[0].owner)!;
    const upcoming = serving
      .filter((s) => s.route.shutdown_date !== undefined)
      .sort((a, b) => a.route.shutdown_date!.localeCompare(b.route.shutdown_date!))[0]?.route;
    return {
      // The prices, limits and token rules of the model that serves first: the client pays the successor's prices.
      ...first,
      id: own.id,
      ownedBy: own.ownedBy,
      created: own.created,
      routes: serving.map((s) => s.route),
      shutdownDate: upcoming?.shutdown_date ?? null,
      successor: upcoming?.successor ?? null,
      ...(first.id !== own.id && { servedBy: first.id }),
    };
  }

  private servingRoutes(id: string, day: string, visiting: Set<string>): ServingRoute[] {
    const model = this.models.get(id);
    if (!model || visiting.has(id)) return [];
    visiting.add(id);
    const serving: ServingRoute[] = [];
    for (const route of model.routes) {
      if (route.shutdown_date === undefined || route.shutdown_date > day) serving.push({ route, owner: id });
      else if (route.successor !== undefined) {
        for (const s of this.servingRoutes(route.successor, day, visiting)) if (!serving.some((t) => t.route === s.route)) serving.push(s);
      }
    }
    visiting.delete(id);
    return serving;
  }

  /** Every route of every model that uses the given provider. */
  routesOf(provider: ProviderName): Array<{ model: string; route: RouteConfig }> {
    return [...this.models.values()].flatMap((m) => m.routes.filter((r) => r.provider === provider).map((route) => ({ model: m.id, route })));
  }

  /** The same models, each served only by the offline `mock` provider. */
  withMockRoutes(): Catalog {
    const file: CatalogFile = { models: {} };
    for (const m of this.models.values()) {
      const embedding = m.kind === 'embedding';
      file.models[m.id] = {
        ...(embedding && { kind: 'embedding' as const, dimensions: m.dimensions }),
        owned_by: m.ownedBy,
        created: m.created,
        pricing: {
          ...m.pricingPerMtok,
          input_per_mtok: m.price.inputPerToken / 1000,
          output_per_mtok: m.price.outputPerToken / 1000,
          cached_input_per_mtok: m.price.cachedInputPerToken / 1000,
        },
        tokenizer: m.tokenizer,
        context_window: m.contextWindow,
        max_output_tokens: embedding ? undefined : m.maxOutputTokens,
        image_tokens: m.tokenRules.image.kind === 'anthropic' ? 'anthropic' : { base: m.tokenRules.image.base, tile: m.tokenRules.image.tile },
        // One mock route per own route, keeping its shutdown day and successor, so the lifecycle runs offline too.
        routes: m.routes.some((r) => r.shutdown_date !== undefined)
          ? m.routes.map((r) => ({ provider: 'mock' as const, model: m.id, ...(r.shutdown_date !== undefined && { shutdown_date: r.shutdown_date }), ...(r.successor !== undefined && { successor: r.successor }) }))
          : [{ provider: 'mock', model: m.id }],
      };
    }
    return new Catalog(file, { now: this.now });
  }
}

/** 2024-05-13, the date gpt-4o was announced; models without `created` report it. */
const CATALOG_EPOCH_S = 1715558400;

function perTokenNanoUsd(perMillionUsd: number): number {
  return Math.round(perMillionUsd * 1000);
}

type PricingFile = CatalogFile['models'][string]['pricing'];

/**
 * The catalog's USD prices as integer nano-USD. Unpriced cache writes: Anthropic's published
 * multipliers (1.25× and 2× input) on Anthropic-family models, else the input price (OpenAI and
 * the others bill no write premium). A tier's cache writes keep the base ratio to its input price.
 */
function priceOf(m: CatalogFile['models'][string]): PriceNanoUsd {
  const p = m.pricing;
  const claude = anthropicFamily(m);
  const tokens = (t: { input_per_mtok: number; output_per_mtok?: number; cached_input_per_mtok?: number; cache_write_per_mtok?: number; cache_write_1h_per_mtok?: number }): TokenPricesNanoUsd => ({
    inputPerToken: perTokenNanoUsd(t.input_per_mtok),
    outputPerToken: perTokenNanoUsd(t.output_per_mtok ?? 0),
    cachedInputPerToken: perTokenNanoUsd(t.cached_input_per_mtok ?? t.input_per_mtok),
    cacheWritePerToken: perTokenNanoUsd(t.cache_write_per_mtok ?? t.input_per_mtok * (claude ? ANTHROPIC_CACHE_WRITE_MULTIPLIER.fiveMinutes : 1)),
    cacheWrite1hPerToken: perTokenNanoUsd(t.cache_write_1h_per_mtok ?? t.input_per_mtok * (claude ? ANTHROPIC_CACHE_WRITE_MULTIPLIER.oneHour : 1)),
  });
  const base = tokens(p);
  const ratio = (write: number | undefined, fallback: number) => (write ?? fallback) / (p.input_per_mtok || 1);
  const tierTokens = (t: NonNullable<PricingFile['service_tiers']>[string]) =>
    tokens({
      ...t,
      cache_write_per_mtok: p.input_per_mtok ? t.input_per_mtok * ratio(p.cache_write_per_mtok, base.cacheWritePerToken / 1000) : undefined,
      cache_write_1h_per_mtok: p.input_per_mtok ? t.input_per_mtok * ratio(p.cache_write_1h_per_mtok, base.cacheWrite1hPerToken / 1000) : undefined,
    });
  const serverToolPerCall: PriceNanoUsd['serverToolPerCall'] = {};
  for (const [tool, usd] of Object.entries(p.server_tools ?? {})) serverToolPerCall[tool as ServerTool] = Math.round(usd * 1e9);
  return {
    ...base,
    serverToolPerCall,
    serviceTiers: Object.fromEntries(Object.entries(p.service_tiers ?? {}).map(([tier, t]) => [tier, tierTokens(t)])),
    ...(p.long_context && { longContext: { ...tokens(p.long_context), aboveInputTokens: p.long_context.above_input_tokens } }),
  };
}

/** OpenAI's embedding models count with cl100k_base; everything else is estimated with o200k_base. */
function defaultTokenizer(m: CatalogFile['models'][string]): TokenizerName {
  return m.routes.some((r) => /^text-embedding-(3-|ada-002)/.test(r.model)) ? 'cl100k_base' : 'o200k_base';
}

export class CatalogError extends Error {
  override name = 'CatalogError';
}

/** Validates a catalog document; the error names the source and every offending field. */
export function parseCatalog(doc: unknown, source: string, options: CatalogOptions = {}): Catalog {
  const result = catalogFileSchema().safeParse(doc);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `  ${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new CatalogError(`Invalid model catalog in ${source}:\n${problems.join('\n')}`);
  }
  return new Catalog(result.data, options);
}

export function loadCatalogFile(path: string, options: CatalogOptions = {}): Catalog {
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
  return parseCatalog(doc, path, options);
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
  let now: () => number;
  try {
    now = catalogClock(env);
  } catch (err) {
    if (err instanceof ClockError) throw new CatalogError(err.message);
    throw err;
  }
  const options: CatalogOptions = { now };
  if (env.ITAPI_MODELS) return loadCatalogFile(env.ITAPI_MODELS, options);
  if (env.ITAPI_MODELS_JSON) {
    let doc: unknown;
    try {
      doc = JSON.parse(env.ITAPI_MODELS_JSON);
    } catch (err) {
      throw new CatalogError(`ITAPI_MODELS_JSON is not valid JSON: ${(err as Error).message}`);
    }
    return parseCatalog(doc, 'ITAPI_MODELS_JSON', options);
  }
  // Not parsed again at every start: schema-checking its 21 models took a third of a cold start's
  // require (docs/BENCHMARKS.md), and test/catalog/defaults.test.ts checks this very constant.
  return new Catalog(DEFAULT_CATALOG, options);
}
