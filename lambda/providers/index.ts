import type { ProviderName, RouteConfig } from '../catalog';
import { encodeChatRequest } from '../codecs/openai-chat';
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
 * What the model's first route cannot take, refused before any hold (its 400 ends the route loop):
 * on a Chat Completions route, the Chat codec's refusals (documents, files by id, more than 128
 * tools, tool names it refuses); on a Bedrock route, Converse's (documents and images by URL or
 * file id, media types Converse has no format for, blocks of another wire). Anthropic's route takes
 * the canonical call whole and refuses in its call. A later route refuses in its own turn, its
 * encoder run as the provider calls it. `call` is the call as that route would get it; its output
 * limit only shapes the probe, and nothing is sent. The Bedrock encoder is loaded on first use
 * (test/lambda/cold-start.test.ts), and keeps the prompt's blocks for the call (bedrock/request.ts).
 */
export function refuseWhatTheFirstRouteCannotTake(route: Pick<RouteConfig, 'provider' | 'model'>, call: Call): void {
  if (route.provider === 'bedrock') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('./bedrock/request') as typeof import('./bedrock/request')).converseRequest(call, route.model);
  } else if (!isClaudeRoute(route.provider)) {
    const refusal = encodeChatRequest(call).unsupported;
    if (refusal) throw refusal;
  }
}

/** The 400s a Chat Completions request gets on a route that cannot take it (Anthropic: n > 1, logprobs, seed, …), before its call. */
export { refuseWhatAnthropicCannotTake } from './anthropic';
