import type { ProviderName } from '../catalog';
import { anthropicProvider } from './anthropic';
import { bedrockAnswerProvider } from './bedrock';
import { mockProvider } from './mock';
import { openAiCompatibleProvider } from './openai-compatible';
import type { AnswerProvider } from './types';

export type ProviderRegistry = Partial<Record<ProviderName, AnswerProvider>>;

/** Every provider this build can call, by the name catalog routes use. */
export function defaultProviders(): ProviderRegistry {
  return {
    'openai-compatible': openAiCompatibleProvider(),
    anthropic: anthropicProvider(),
    bedrock: bedrockAnswerProvider(),
    mock: mockProvider(),
  };
}

/** The 400s a Chat Completions request gets on a route that cannot take it (Anthropic: n > 1, logprobs, seed, …), before its call. */
export { refuseWhatAnthropicCannotTake } from './anthropic';
