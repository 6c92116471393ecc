import type { ProviderName } from '../catalog';
import { anthropicProvider } from './anthropic';
import { mockProvider } from './mock';
import { openAiCompatibleProvider } from './openai-compatible';
import type { AnswerProvider } from './types';
import type { Call } from '../core/call';

export type ProviderRegistry = Partial<Record<ProviderName, AnswerProvider>>;

/** Every provider this build can call, by the name catalog routes use. */
export function defaultProviders(): ProviderRegistry {
  return {
    'openai-compatible': openAiCompatibleProvider(),
    anthropic: anthropicProvider(),
    bedrock: bedrockOnFirstCall(),
    mock: mockProvider(),
  };
}

/**
 * Bedrock's code (its request map, stream decoder and errors) is required on its first call, not at
 * init: a catalog without Bedrock routes never runs it (docs/BENCHMARKS.md, "Cold start";
 * test/lambda/cold-start.test.ts fails if it is imported eagerly again). Synchronous, since
 * `thinkingBilling` is; the bundle keeps the module inside and runs its top level then.
 */
function bedrockOnFirstCall(): AnswerProvider {
  let provider: AnswerProvider | undefined;
  const bedrock = (): AnswerProvider =>
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (provider ??= (require('./bedrock') as typeof import('./bedrock')).bedrockAnswerProvider());
  return {
    answer: (call) => bedrock().answer(call),
    answerStream: (call) => bedrock().answerStream(call),
    thinkingBilling: (call) => bedrock().thinkingBilling?.(call),
    embed: (call) => bedrock().embed!(call),
  };
}

/**
 * Routes whose provider takes the canonical call with all of Claude's blocks (thinking sent back,
 * documents): Anthropic's and Bedrock's. What only a Chat Completions route refuses (the Chat
 * codec's `unsupported`) is never refused on them; their own encoders refuse what they cannot take.
 */
export function isClaudeRoute(provider: string): boolean {
  return provider === 'anthropic' || provider === 'bedrock';
}

/**
 * What a Bedrock route cannot take (documents and images by URL or file id, media types Converse has
 * no format for, blocks of another wire), thrown as the 400 its call would get: an endpoint whose
 * model's first route is Bedrock's asks this before any hold, as it asks a Chat route's probe. The
 * Bedrock encoder is loaded on first use (test/lambda/cold-start.test.ts).
 */
export function refuseWhatBedrockCannotTake(call: Call, modelId: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('./bedrock/request') as typeof import('./bedrock/request')).converseRequest(call, modelId);
}

/** The 400s a Chat Completions request gets on a route that cannot take it (Anthropic: n > 1, logprobs, seed, …), before its call. */
export { refuseWhatAnthropicCannotTake } from './anthropic';
