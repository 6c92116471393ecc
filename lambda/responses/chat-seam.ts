// TEMPORARY (issue 18 step 4, until the pipeline takes a DecodedRequest and meters AnswerEvents):
// the one seam between the Responses endpoint, which speaks the canonical model, and today's
// Chat-shaped pipeline. The decoded request goes in through the Chat codec (thinking fields on
// where every route is Claude's, so that thinking sent back reaches it), and the pipeline's
// completion or chunks come back through the Chat codec as an Answer or AnswerEvents. Delete this
// file when `openCompletion` takes the DecodedRequest.
import type { ModelEntry } from '../catalog';
import { encodeChatRequest } from '../codecs/openai-chat';
import type { Answer, AnswerEvent, Usage } from '../core/answer';
import { callFor, heldOutputLimit, type DecodedRequest } from '../core/call';
import { parseChatCompletionRequest, type ChatCompletionRequest } from '../contract/request';
import type { KeyRecord } from '../store/keys';
import { chatPromptEstimate, countTokens } from '../money/tokens';
import { chatBillingAsk, openAnswer, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import { refuseWhatAnthropicCannotTake } from '../providers';
import { invalidRequest } from '../contract/errors';

/** A pipeline run the endpoint can answer from: a whole answer, or its events as they come. */
export type OpenedAnswer = { kind: 'json'; answer: Answer } | { kind: 'stream'; events: AnswerEvents };

/** The answer's events; `return()` is the client going away (bills what was delivered and stops the upstream). */
export interface AnswerEvents {
  next(): Promise<IteratorResult<AnswerEvent>>;
  return(): Promise<unknown>;
  /** The endpoint cannot go on with the events (its encoding failed): stop the upstream, bill what it delivered. */
  fail?(error: import('../contract/errors').GatewayError): Promise<void>;
}

/** What the endpoint needs before the run: what the route will not get, and the usage estimate when a provider reports none. */
export interface AnswerPlan {
  dropped: string[];
  estimate(outputText: string): Usage;
  open(deps: CompletionDeps, scope: RequestScope, key: KeyRecord): Promise<OpenedAnswer>;
}

export function answerPlan(decoded: DecodedRequest, model: ModelEntry, account?: string): AnswerPlan {
  // Thinking sent back only reaches Claude (Anthropic, Bedrock); a Chat upstream must not get the fields.
  const thinkingFields = model.routes.every((r) => r.provider === 'anthropic' || r.provider === 'bedrock');
  const wish = decoded.options.outputLimit;
  const { request: encoded, unsupported, droppedTools } = encodeChatRequest(callFor(decoded, heldOutputLimit(wish ?? model.maxOutputTokens)), { thinkingFields });
  if (unsupported) throw unsupported;
  // The pipeline holds for the client's limit (or the model's when it named none) and writes what it held.
  if (wish === undefined) delete encoded.max_completion_tokens;
  const chat: ChatCompletionRequest = parseChatCompletionRequest({ ...encoded, model: model.id });
  const prompt = chatPromptEstimate(chat, model.tokenRules, account);
  return {
    dropped: droppedTools,
    estimate: (text) => ({ inputTokens: prompt.tokens(), cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: countTokens(text) }),
    async open(deps, scope, key) {
      // The decoded request itself goes through the one pipeline; the Chat request above only
      // validates it as today, counts its prompt and names what a Chat route would refuse.
      const opened = await openAnswer(deps, scope, key, model, decoded, {
        prompt,
        billing: chatBillingAsk(chat, model),
        check: (call) => {
          if (call.route.provider === 'anthropic' || call.route.provider === 'bedrock') refuseLogprobs(decoded, call.route.provider);
          if (call.route.provider === 'anthropic') refuseWhatAnthropicCannotTake(chat);
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
