import type { ProviderName } from '../catalog';
import { mockProvider } from './mock';
import { openAiCompatibleProvider } from './openai-compatible';
import type { Provider } from './types';

export type ProviderRegistry = Partial<Record<ProviderName, Provider>>;

/** Every provider this build can call, by the name catalog routes use. */
export function defaultProviders(): ProviderRegistry {
  return {
    'openai-compatible': openAiCompatibleProvider(),
    mock: mockProvider(),
  };
}
