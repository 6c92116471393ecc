// How a decoded Responses request runs on the one pipeline (`openAnswer`): its prompt counted and
// its billing asked in the canonical model, and what its first route cannot take refused before any
// hold (a later route refuses in its own turn).
import type { ModelEntry } from '../catalog';
import type { Answer, AnswerEvent, Usage } from '../core/answer';
import { callFor, heldOutputLimit, type DecodedRequest } from '../core/call';
import { GatewayError, invalidRequest } from '../contract/errors';
import type { KeyRecord } from '../store/keys';
import { UNKNOWN_INPUT_TOKENS } from '../money/billing-ask';
import { callPromptEstimate, countTokens, plusTokens } from '../money/tokens';
import { openAnswer, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import { isClaudeRoute, refuseWhatTheFirstRouteCannotTake } from '../providers';
import { responsesBillingAsk } from './billing';

/** A pipeline run the endpoint can answer from: a whole answer, or its events as they come. */
export type OpenedAnswer = { kind: 'json'; answer: Answer } | { kind: 'stream'; events: AnswerEvents };

/** The answer's events; `return()` is the client going away (bills what was delivered and stops the upstream). */
export interface AnswerEvents {
  next(): Promise<IteratorResult<AnswerEvent>>;
  return(): Promise<unknown>;
  /** The endpoint cannot go on with the events (its encoding failed): stop the upstream, bill what it delivered. */
  fail?(error: GatewayError): Promise<void>;
}

/** What the endpoint needs besides the run: the usage estimate when a provider reports none. */
export interface AnswerPlan {
  estimate(outputText: string): Usage;
  open(deps: CompletionDeps, scope: RequestScope, key: KeyRecord): Promise<OpenedAnswer>;
}

export function answerPlan(decoded: DecodedRequest, model: ModelEntry, account?: string): AnswerPlan {
  // What the first route cannot take is refused before any hold; a later route refuses in its turn.
  refuseWhatTheFirstRouteCannotTake(model.routes[0], callFor(decoded, heldOutputLimit(decoded.options.outputLimit ?? model.maxOutputTokens)));
  const billing = responsesBillingAsk(decoded.prompt, decoded.options, model);
  // A document but plain text counts as UNKNOWN_INPUT_TOKENS in the minute (money holds the context
  // window). Thinking and documents count where any route is Claude's: a hold above a Chat route's
  // bill is safe, one below Claude's is not.
  const claudeBlocks = model.routes.some((r) => isClaudeRoute(r.provider));
  const prompt = plusTokens(callPromptEstimate(decoded.prompt, decoded.options, model.tokenRules, account, claudeBlocks), (billing.unknownSizeInputs ?? 0) * UNKNOWN_INPUT_TOKENS);
  return {
    estimate: (text) => ({ inputTokens: prompt.tokens(), cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: countTokens(text) }),
    async open(deps, scope, key) {
      const opened = await openAnswer(deps, scope, key, model, decoded, {
        prompt,
        billing,
        check: (call) => {
          if (isClaudeRoute(call.route.provider)) refuseLogprobs(decoded, call.route.provider);
        },
      });
      if (opened.kind === 'json') return { kind: 'json', answer: opened.answer };
      if (opened.kind === 'relay') throw new Error('The Responses endpoint asks for no relay.');
      return { kind: 'stream', events: opened.events };
    },
  };
}

/**
 * Logprobs asked (`top_logprobs`, or `include: ["message.output_text.logprobs"]`) of a route that
 * returns none (Anthropic, Bedrock): a 400 naming the parameter, as Chat's `logprobs` gets.
 */
function refuseLogprobs(decoded: DecodedRequest, provider: string): void {
  const asked = decoded.options.logprobs;
  if (!asked) return;
  const param = asked.topLogprobs !== undefined && asked.topLogprobs > 0 ? 'top_logprobs' : 'include';
  const what = param === 'include' ? "'include' asks for 'message.output_text.logprobs', which is" : "'top_logprobs' is";
  throw invalidRequest(`${what} not supported for this model (served by ${provider}): the provider returns no log probabilities.`, param, 'unsupported_parameter');
}
