import fc from 'fast-check';
import type { Answer, AnswerPart, ChoiceLogprobs, FinishReason, TokenLogprob, UrlCitation, Usage } from '../../lambda/core/answer';

/** fast-check inputs for the canonical model, shared by the codec round-trip tests. */

export const word = fc.stringMatching(/^[a-z]{1,8}$/);
export const text = fc.string({ minLength: 1, maxLength: 24 });
export const id = fc.stringMatching(/^[a-zA-Z0-9_]{1,16}$/);
export const toolName = fc.stringMatching(/^[a-zA-Z0-9_-]{1,24}$/);
export const signature = fc.base64String({ minLength: 4, maxLength: 40 });
/** Tool arguments as JSON text that survives parse and serialise unchanged (letter keys keep their order). */
export const toolArguments = fc
  .dictionary(word, fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean(), fc.constant(null)), { maxKeys: 3 })
  .map((o) => JSON.stringify(o));
export const count = fc.nat({ max: 100_000 });

export const usage = (classes: { cacheWrites?: boolean; serverTools?: boolean; reasoning?: boolean; tier?: boolean; tiers?: string[] } = {}): fc.Arbitrary<Usage> =>
  fc.record(
    {
      inputTokens: count,
      cacheReadTokens: count,
      cacheWriteTokens: classes.cacheWrites === false ? fc.constant(0) : count,
      cacheWrite1hTokens: classes.cacheWrites === false ? fc.constant(0) : count,
      outputTokens: count,
      reasoningTokens: count,
      serverToolCalls: fc.dictionary(fc.constantFrom('web_search', 'web_fetch'), fc.integer({ min: 1, max: 50 }), { minKeys: 1 }),
      serviceTier: fc.constantFrom(...(classes.tiers ?? ['standard', 'priority'])),
    },
    {
      requiredKeys: ['inputTokens', 'cacheReadTokens', 'cacheWriteTokens', 'cacheWrite1hTokens', 'outputTokens'],
    },
  ).map((u) => {
    const out = { ...u };
    if (classes.serverTools === false) delete out.serverToolCalls;
    if (classes.reasoning === false) delete out.reasoningTokens;
    if (classes.tier === false) delete out.serviceTier;
    return out;
  });

export const reasoningPart: fc.Arbitrary<Extract<AnswerPart, { type: 'reasoning' }>> = fc.oneof(
  fc.record({ type: fc.constant('reasoning' as const), text, signature }),
  fc.record({ type: fc.constant('reasoning' as const), text: fc.constant(''), redactedData: signature }),
);
export const toolCallPart: fc.Arbitrary<Extract<AnswerPart, { type: 'tool_call' }>> = fc.record({
  type: fc.constant('tool_call' as const),
  id,
  name: toolName,
  arguments: toolArguments,
});
export const textPart = fc.record({ type: fc.constant('text' as const), text });

export function answer(parts: fc.Arbitrary<AnswerPart[]>, finish: fc.Arbitrary<FinishReason>, usageOf: fc.Arbitrary<Usage | undefined>): fc.Arbitrary<Answer> {
  return fc.record({ id, model: word, createdS: fc.integer({ min: 1_700_000_000, max: 1_900_000_000 }), parts, finishReason: finish, usage: usageOf }).map((a) => {
    const out: Answer = { ...a };
    if (out.usage === undefined) delete out.usage;
    return out;
  });
}

const logprobValue = fc.double({ min: -30, max: 0, noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x));
const tokenBytes = fc.option(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 4 }), { nil: null });
export const tokenLogprob: fc.Arbitrary<TokenLogprob> = fc.record({
  token: fc.string({ maxLength: 6 }),
  logprob: logprobValue,
  bytes: tokenBytes,
  top_logprobs: fc.array(fc.record({ token: fc.string({ maxLength: 6 }), logprob: logprobValue, bytes: tokenBytes }), { maxLength: 3 }),
});
/** A choice's log probabilities as OpenAI sends them: at least one of the two lists. */
export const choiceLogprobs: fc.Arbitrary<ChoiceLogprobs> = fc.oneof(
  fc.record({ content: fc.array(tokenLogprob, { maxLength: 4 }), refusal: fc.constant(null) }),
  fc.record({ content: fc.constant(null), refusal: fc.array(tokenLogprob, { minLength: 1, maxLength: 3 }) }),
  fc.record({ content: fc.array(tokenLogprob, { minLength: 1, maxLength: 3 }), refusal: fc.array(tokenLogprob, { maxLength: 3 }) }),
);
export const urlCitation: fc.Arbitrary<UrlCitation> = fc.record({
  type: fc.constant('url_citation' as const),
  url: word.map((w) => `https://example.com/${w}`),
  title: fc.string({ maxLength: 12 }),
  startIndex: fc.nat({ max: 50 }),
  endIndex: fc.nat({ max: 100 }),
});
