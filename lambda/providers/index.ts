import type { ProviderName } from '../catalog';
import { anthropicChatProvider } from './anthropic';
import { bedrockProvider } from './bedrock';
import { mockProvider } from './mock';
import { openAiCompatibleProvider } from './openai-compatible';
import type { Provider } from './types';

export type ProviderRegistry = Partial<Record<ProviderName, Provider>>;

/** Every provider this build can call, by the name catalog routes use. */
export function defaultProviders(): ProviderRegistry {
  return {
    'openai-compatible': openAiCompatibleProvider(),
    anthropic: anthropicChatProvider(),
    bedrock: bedrockProvider(),
    mock: mockProvider(),
  };
}
