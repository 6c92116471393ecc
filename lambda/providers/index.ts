import type { ProviderName } from '../catalog';
import { anthropicChatProvider } from './anthropic';
import { bedrockAnswerProvider, bedrockProvider } from './bedrock';
import { mockProvider } from './mock';
import { openAiCompatibleProvider } from './openai-compatible';
import type { AnswerProvider, Provider } from './types';

export type ProviderRegistry = Partial<Record<ProviderName, Provider | (Provider & AnswerProvider)>>;

/**
 * Temporary (issue 18, until the pipeline calls `AnswerProvider`s only): one registry entry with a
 * provider's chat-chunk side (the pipeline today) and its canonical side (`/v1/messages` already).
 */
export function withAnswerProvider(chat: Provider, canonical: AnswerProvider): Provider & AnswerProvider {
  return { ...canonical, complete: chat.complete.bind(chat), stream: chat.stream.bind(chat), ...(chat.embed && { embed: chat.embed.bind(chat) }) };
}

/** Every provider this build can call, by the name catalog routes use. */
export function defaultProviders(): ProviderRegistry {
  return {
    'openai-compatible': openAiCompatibleProvider(),
    anthropic: anthropicChatProvider(),
    bedrock: withAnswerProvider(bedrockProvider(), bedrockAnswerProvider()),
    mock: mockProvider(),
  };
}
