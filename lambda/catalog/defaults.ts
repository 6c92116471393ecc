import type { CatalogFile } from './index';

const OPENAI = 'https://api.openai.com/v1';

/** Public list prices (USD per million tokens) and limits, as the providers document them. */
export const DEFAULT_CATALOG: CatalogFile = {
  models: {
    'gpt-4o': {
      owned_by: 'openai',
      pricing: { input_per_mtok: 2.5, output_per_mtok: 10, cached_input_per_mtok: 1.25 },
      context_window: 128000,
      max_output_tokens: 16384,
      routes: [{ provider: 'openai-compatible', base_url: OPENAI, secret: 'openai', model: 'gpt-4o' }],
    },
    'gpt-4o-mini': {
      owned_by: 'openai',
      pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075 },
      context_window: 128000,
      max_output_tokens: 16384,
      image_tokens: { base: 2833, tile: 5667 },
      routes: [{ provider: 'openai-compatible', base_url: OPENAI, secret: 'openai', model: 'gpt-4o-mini' }],
    },
    'claude-3-5-sonnet-20241022': {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 },
      context_window: 200000,
      max_output_tokens: 8192,
      routes: [{ provider: 'anthropic', secret: 'anthropic', model: 'claude-3-5-sonnet-20241022' }],
    },
    'claude-3-opus-20240229': {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 15, output_per_mtok: 75, cached_input_per_mtok: 1.5 },
      context_window: 200000,
      max_output_tokens: 4096,
      routes: [{ provider: 'anthropic', secret: 'anthropic', model: 'claude-3-opus-20240229' }],
    },
    'deepseek-chat': {
      owned_by: 'deepseek',
      pricing: { input_per_mtok: 0.27, output_per_mtok: 1.1, cached_input_per_mtok: 0.07 },
      context_window: 64000,
      max_output_tokens: 8192,
      routes: [{ provider: 'openai-compatible', base_url: 'https://api.deepseek.com/v1', secret: 'deepseek', model: 'deepseek-chat' }],
    },
    'gemini-2.0-flash': {
      owned_by: 'google',
      pricing: { input_per_mtok: 0.1, output_per_mtok: 0.4, cached_input_per_mtok: 0.025 },
      context_window: 1048576,
      max_output_tokens: 8192,
      routes: [
        {
          provider: 'openai-compatible',
          base_url: 'https://generativelanguage.googleapis.com/v1beta/openai',
          secret: 'gemini',
          model: 'gemini-2.0-flash',
        },
      ],
    },
    'text-embedding-3-small': {
      kind: 'embedding',
      owned_by: 'openai',
      pricing: { input_per_mtok: 0.02 },
      context_window: 8191,
      dimensions: 1536,
      routes: [{ provider: 'openai-compatible', base_url: OPENAI, secret: 'openai', model: 'text-embedding-3-small' }],
    },
    'text-embedding-3-large': {
      kind: 'embedding',
      owned_by: 'openai',
      pricing: { input_per_mtok: 0.13 },
      context_window: 8191,
      dimensions: 3072,
      routes: [{ provider: 'openai-compatible', base_url: OPENAI, secret: 'openai', model: 'text-embedding-3-large' }],
    },
  },
};
