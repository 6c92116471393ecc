import type { CatalogFile } from './index';

const OPENAI = 'https://api.openai.com/v1';
const DEEPSEEK = 'https://api.deepseek.com/v1';
const GEMINI = 'https://generativelanguage.googleapis.com/v1beta/openai';

type ModelSpec = CatalogFile['models'][string];

const anthropic = (model: string, spec: Omit<ModelSpec, 'owned_by' | 'routes'>): ModelSpec => ({
  owned_by: 'anthropic',
  ...spec,
  routes: [{ provider: 'anthropic', secret: 'anthropic', model }],
});
const compatible = (owner: string, baseUrl: string, secret: string, model: string, spec: Omit<ModelSpec, 'owned_by' | 'routes'>): ModelSpec => ({
  owned_by: owner,
  ...spec,
  routes: [{ provider: 'openai-compatible', base_url: baseUrl, secret, model }],
});

/** The spec with each of its routes shut down on `date` (UTC), the successor's routes serving from that day on. */
const retiring = (spec: ModelSpec, date: string, successor: string): ModelSpec => ({
  ...spec,
  routes: spec.routes.map((route) => ({ ...route, shutdown_date: date, successor })),
});

/*
 * Shutdown dates and successors as the providers publish them (2026-12-05):
 * - OpenAI (developers.openai.com/api/docs/deprecations): gpt-5, gpt-5-mini and gpt-5-nano shut
 *   down on 2026-12-11, replaced by gpt-6.1-sol, gpt-6.1-terra and gpt-6-luna; gpt-4o and
 *   gpt-4o-mini (and the 4.1 family) on 2027-01-14, replaced by gpt-6.1-sol and gpt-6-luna.
 *   Prices per million tokens (input / output / cached input): gpt-6.1-sol $2 / $10 / $0.10,
 *   gpt-6.1-terra $1 / $5 / $0.05, gpt-6-luna $0.10 / $0.50 / $0.01 (1.05M context, 128K output;
 *   a prompt over 272K input tokens is billed 2x input and cached input, 1.5x output, as published
 *   for gpt-6.1-terra and applied to the family); gpt-5 $1.25 / $10 / $0.125, gpt-5-mini
 *   $0.25 / $2 / $0.025, gpt-5-nano $0.05 / $0.40 / $0.005 (400K context, 128K output).
 * - Anthropic lists the Claude 4.x models served here as active or legacy, with no retirement
 *   date yet; DeepSeek and Google have announced none for the models below.
 */

/*
 * Upstream models as of 2026-12-01 (each provider's models, pricing and deprecation pages):
 * - Claude Sonnet 4.6 ($3 / $15, cache reads $0.30) and Opus 4.8 ($5 / $25, $0.50): 1M context;
 *   output capped here at 64K. Haiku 4.5 ($1 / $5, $0.10): 200K context, 64K output.
 * - DeepSeek V4 Flash ($0.14 / $0.28, cache hits $0.0028) and V4 Pro ($0.435 / $0.87, $0.003625):
 *   1M context; DeepSeek retired the names deepseek-chat / deepseek-reasoner on 2026-07-24.
 * - Gemini 3.5 Flash-Lite ($0.30 / $2.50) and 3.5 Flash ($1.50 / $9): 1M context, 64K output;
 *   gemini-2.0-flash was shut down on 2026-06-01, its successor gemini-2.5-flash on 2026-12-01.
 * - gpt-4o ($2.50 / $10) and gpt-4o-mini ($0.15 / $0.60) are served until OpenAI shuts them down on
 *   2027-01-14 (its replacements, the GPT-6 family, price prompts over 272K tokens higher, which a
 *   catalog price cannot express).
 */
/*
 * Prices beyond input and output, checked 2026-12-05 (docs/BILLING.md lists each and where it is published):
 * - Claude: cache writes 1.25× input for 5 minutes, 2× for 1 hour; web search $10 per 1,000
 *   searches; web fetch no charge beyond its tokens; code execution is billed by container time,
 *   which no per-call price expresses, so it is not priced (requests with it are refused). Claude's
 *   1M context is billed at the same prices throughout (no long-context tier since its GA).
 * - OpenAI: Priority processing for gpt-4o ($4.25 / $17, cached $2.125) and gpt-4o-mini ($0.25 /
 *   $1, cached $0.125); Flex is not offered for them; cache writes are not billed apart.
 * - DeepSeek and Gemini (OpenAI endpoint): no service tiers, server tools or long-context prices
 *   these routes can incur.
 */
const CLAUDE_SERVER_TOOLS = { web_search: 0.01, web_fetch: 0 };

const CLAUDE_SONNET = anthropic('claude-sonnet-4-6', {
  pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75, cache_write_1h_per_mtok: 6, server_tools: CLAUDE_SERVER_TOOLS },
  context_window: 1_000_000,
  max_output_tokens: 64_000,
});
const CLAUDE_OPUS = anthropic('claude-opus-4-8', {
  pricing: { input_per_mtok: 5, output_per_mtok: 25, cached_input_per_mtok: 0.5, cache_write_per_mtok: 6.25, cache_write_1h_per_mtok: 10, server_tools: CLAUDE_SERVER_TOOLS },
  context_window: 1_000_000,
  max_output_tokens: 64_000,
});
const DEEPSEEK_FLASH = compatible('deepseek', DEEPSEEK, 'deepseek', 'deepseek-v4-flash', {
  pricing: { input_per_mtok: 0.14, output_per_mtok: 0.28, cached_input_per_mtok: 0.0028 },
  context_window: 1_000_000,
  max_output_tokens: 65_536,
});
const GEMINI_FLASH_LITE = compatible('google', GEMINI, 'gemini', 'gemini-3.5-flash-lite', {
  pricing: { input_per_mtok: 0.3, output_per_mtok: 2.5 },
  context_window: 1_048_576,
  max_output_tokens: 65_536,
});

/**
 * The catalog served when none is given. The model ids the original design names stay as names
 * clients may send; where the provider retired that model, the id is an alias of its current
 * successor (`GET /v1/models` lists the id, `x-itapi-route` names the upstream model):
 *
 * | id | served by |
 * |---|---|
 * | `claude-3-5-sonnet-20241022` | Anthropic `claude-sonnet-4-6` |
 * | `claude-3-opus-20240229` | Anthropic `claude-opus-4-8` |
 * | `deepseek-chat` | DeepSeek `deepseek-v4-flash` |
 * | `gemini-2.0-flash` | Google `gemini-3.5-flash-lite` |
 * | `gpt-4o`, `gpt-4o-mini` | OpenAI `gpt-4o`, `gpt-4o-mini` until 2027-01-14, then `gpt-6.1-sol`, `gpt-6-luna` |
 * | `gpt-5`, `gpt-5-mini`, `gpt-5-nano` | themselves until 2026-12-11, then `gpt-6.1-sol`, `gpt-6.1-terra`, `gpt-6-luna` |
 *
 * An alias is billed at the prices of the model that serves it.
 */
export const DEFAULT_CATALOG: CatalogFile = {
  models: {
    'gpt-4o': retiring(
      compatible('openai', OPENAI, 'openai', 'gpt-4o', {
        pricing: {
          input_per_mtok: 2.5,
          output_per_mtok: 10,
          cached_input_per_mtok: 1.25,
          service_tiers: { priority: { input_per_mtok: 4.25, output_per_mtok: 17, cached_input_per_mtok: 2.125 } },
        },
        context_window: 128_000,
        max_output_tokens: 16_384,
      }),
      '2027-01-14',
      'gpt-6.1-sol',
    ),
    'gpt-4o-mini': retiring(
      compatible('openai', OPENAI, 'openai', 'gpt-4o-mini', {
        pricing: {
          input_per_mtok: 0.15,
          output_per_mtok: 0.6,
          cached_input_per_mtok: 0.075,
          service_tiers: { priority: { input_per_mtok: 0.25, output_per_mtok: 1, cached_input_per_mtok: 0.125 } },
        },
        context_window: 128_000,
        max_output_tokens: 16_384,
        // Its images count many more tokens than gpt-4o's, at its lower price (OpenAI's vision pricing).
        image_tokens: { base: 2833, tile: 5667 },
      }),
      '2027-01-14',
      'gpt-6-luna',
    ),
    'gpt-5': retiring(
      compatible('openai', OPENAI, 'openai', 'gpt-5', {
        pricing: { input_per_mtok: 1.25, output_per_mtok: 10, cached_input_per_mtok: 0.125 },
        context_window: 400_000,
        max_output_tokens: 128_000,
      }),
      '2026-12-11',
      'gpt-6.1-sol',
    ),
    'gpt-5-mini': retiring(
      compatible('openai', OPENAI, 'openai', 'gpt-5-mini', {
        pricing: { input_per_mtok: 0.25, output_per_mtok: 2, cached_input_per_mtok: 0.025 },
        context_window: 400_000,
        max_output_tokens: 128_000,
      }),
      '2026-12-11',
      'gpt-6.1-terra',
    ),
    'gpt-5-nano': retiring(
      compatible('openai', OPENAI, 'openai', 'gpt-5-nano', {
        pricing: { input_per_mtok: 0.05, output_per_mtok: 0.4, cached_input_per_mtok: 0.005 },
        context_window: 400_000,
        max_output_tokens: 128_000,
      }),
      '2026-12-11',
      'gpt-6-luna',
    ),
    'gpt-6.1-sol': compatible('openai', OPENAI, 'openai', 'gpt-6.1-sol', {
      pricing: {
        input_per_mtok: 2,
        output_per_mtok: 10,
        cached_input_per_mtok: 0.1,
        long_context: { above_input_tokens: 272_000, input_per_mtok: 4, output_per_mtok: 15, cached_input_per_mtok: 0.2 },
      },
      context_window: 1_050_000,
      max_output_tokens: 128_000,
    }),
    'gpt-6.1-terra': compatible('openai', OPENAI, 'openai', 'gpt-6.1-terra', {
      pricing: {
        input_per_mtok: 1,
        output_per_mtok: 5,
        cached_input_per_mtok: 0.05,
        long_context: { above_input_tokens: 272_000, input_per_mtok: 2, output_per_mtok: 7.5, cached_input_per_mtok: 0.1 },
      },
      context_window: 1_050_000,
      max_output_tokens: 128_000,
    }),
    'gpt-6-luna': compatible('openai', OPENAI, 'openai', 'gpt-6-luna', {
      pricing: {
        input_per_mtok: 0.1,
        output_per_mtok: 0.5,
        cached_input_per_mtok: 0.01,
        long_context: { above_input_tokens: 272_000, input_per_mtok: 0.2, output_per_mtok: 0.75, cached_input_per_mtok: 0.02 },
      },
      context_window: 1_050_000,
      max_output_tokens: 128_000,
    }),
    'claude-3-5-sonnet-20241022': CLAUDE_SONNET,
    'claude-3-opus-20240229': CLAUDE_OPUS,
    'deepseek-chat': DEEPSEEK_FLASH,
    'gemini-2.0-flash': GEMINI_FLASH_LITE,
    'claude-sonnet-4-6': CLAUDE_SONNET,
    'claude-opus-4-8': CLAUDE_OPUS,
    'claude-haiku-4-5': anthropic('claude-haiku-4-5-20251001', {
      pricing: { input_per_mtok: 1, output_per_mtok: 5, cached_input_per_mtok: 0.1, cache_write_per_mtok: 1.25, cache_write_1h_per_mtok: 2, server_tools: CLAUDE_SERVER_TOOLS },
      context_window: 200_000,
      max_output_tokens: 64_000,
    }),
    'deepseek-v4-flash': DEEPSEEK_FLASH,
    'deepseek-v4-pro': compatible('deepseek', DEEPSEEK, 'deepseek', 'deepseek-v4-pro', {
      pricing: { input_per_mtok: 0.435, output_per_mtok: 0.87, cached_input_per_mtok: 0.003625 },
      context_window: 1_000_000,
      max_output_tokens: 65_536,
    }),
    'gemini-3.5-flash-lite': GEMINI_FLASH_LITE,
    'gemini-3.5-flash': compatible('google', GEMINI, 'gemini', 'gemini-3.5-flash', {
      pricing: { input_per_mtok: 1.5, output_per_mtok: 9 },
      context_window: 1_048_576,
      max_output_tokens: 65_536,
    }),
    'text-embedding-3-small': {
      kind: 'embedding',
      owned_by: 'openai',
      pricing: { input_per_mtok: 0.02 },
      tokenizer: 'cl100k_base',
      context_window: 8191,
      dimensions: 1536,
      routes: [{ provider: 'openai-compatible', base_url: OPENAI, secret: 'openai', model: 'text-embedding-3-small' }],
    },
    'text-embedding-3-large': {
      kind: 'embedding',
      owned_by: 'openai',
      pricing: { input_per_mtok: 0.13 },
      tokenizer: 'cl100k_base',
      context_window: 8191,
      dimensions: 3072,
      routes: [{ provider: 'openai-compatible', base_url: OPENAI, secret: 'openai', model: 'text-embedding-3-large' }],
    },
  },
};
