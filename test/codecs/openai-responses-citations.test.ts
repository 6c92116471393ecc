import fc from 'fast-check';
import { encodeChatRequest } from '../../lambda/codecs/openai-chat';
import {
  decodeResponse,
  decodeResponsesRequest,
  encodeResponse,
  encodeResponsesRequest,
  replayResponseFrames,
  responseShell,
  responsesStreamTerminals,
  ResponsesEventEncoder,
  type ResponsesObject,
} from '../../lambda/codecs/openai-responses';
import { answerEvents, collectAnswer, type Answer, type AnswerEvent, type AnswerPart, type TokenLogprob, type UrlCitation } from '../../lambda/core/answer';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import { parseCreateResponseRequest } from '../../lambda/contract/responses';
import { validateResponse, validateResponseEvent } from '../support/openai-schema';
import { reasoningPart, toolCallPart, word } from './arbitraries';

/**
 * The Responses codec keeps the canonical answer's URL citations and (when asked) logprobs: split
 * over the `output_text` parts by where they fall in the choice's text, on the stream's deltas
 * and `annotation.added` events, and back from a stored response for its replay.
 */

const NOW_MS = 1_800_000_000_000;
const REQUEST = parseCreateResponseRequest({ model: 'gpt-test', input: 'hi', include: ['message.output_text.logprobs'], top_logprobs: 1 });
const shell = responseShell(REQUEST, decodeResponsesRequest(REQUEST), { id: 'resp_test', model: 'gpt-test', createdAtMs: NOW_MS });
const idFor = (prefix: string, i: number) => `${prefix}_o${i}`;
const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value));

const logprobValue = fc.double({ min: -30, max: 0, noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x));
const token = fc.string({ minLength: 1, maxLength: 5 });
const tokenLogprob = (t: string) =>
  fc
    .record({
      logprob: logprobValue,
      top_logprobs: fc.array(fc.record({ token, logprob: logprobValue }).map((top) => ({ ...top, bytes: [...Buffer.from(top.token, 'utf8')] })), { maxLength: 2 }),
    })
    .map((r): TokenLogprob => ({ token: t, logprob: r.logprob, bytes: [...Buffer.from(t, 'utf8')], top_logprobs: r.top_logprobs }));
/** A text part made of tokens, each with its logprob. */
const tokenizedText = fc.array(token, { minLength: 1, maxLength: 4 }).chain((tokens) => fc.tuple(...tokens.map(tokenLogprob)));

type Planned = { answer: Answer; tokensByPart: Map<number, TokenLogprob[]> };

/** An answer of text parts (with reasoning, calls and refusals between), its tokens' logprobs and citations anywhere in its text. */
const planned: fc.Arbitrary<Planned> = fc
  .array(fc.oneof({ arbitrary: tokenizedText.map((tokens) => ({ tokens })), weight: 3 }, reasoningPart, toolCallPart, fc.record({ type: fc.constant('refusal' as const), text: fc.string({ minLength: 1, maxLength: 8 }) })), { minLength: 1, maxLength: 6 })
  .filter((items) => items.some((i) => 'tokens' in i))
  .chain((items) => {
    const tokensByPart = new Map<number, TokenLogprob[]>();
    const parts: AnswerPart[] = items.map((item, index) => {
      if (!('tokens' in item)) return item as AnswerPart;
      tokensByPart.set(index, item.tokens);
      return { type: 'text', text: item.tokens.map((t) => t.token).join('') };
    });
    const length = parts.reduce((n, p) => n + (p.type === 'text' ? p.text.length : 0), 0);
    const citation: fc.Arbitrary<UrlCitation> = fc
      .tuple(fc.nat({ max: length - 1 }), fc.nat({ max: length }), word, fc.string({ maxLength: 10 }))
      .map(([a, b, w, title]) => ({ type: 'url_citation', url: `https://example.com/${w}`, title, startIndex: a, endIndex: Math.max(a, b) }));
    return fc.array(citation, { maxLength: 3 }).map((annotations): Planned => ({
      tokensByPart,
      answer: {
        id: 'resp_test',
        model: 'gpt-test',
        createdS: Math.floor(NOW_MS / 1000),
        parts,
        finishReason: parts.some((p) => p.type === 'tool_call') ? 'tool_calls' : 'stop',
        logprobs: { content: [...tokensByPart.values()].flat(), refusal: null },
        ...(annotations.length > 0 && { annotations: [...annotations].sort((x, y) => x.startIndex - y.startIndex) }),
      },
    }));
  });

type Data = { type: string; delta?: string; logprobs?: Array<{ token: string }>; annotation?: unknown; response?: ResponsesObject; [k: string]: unknown };
type OutputText = { type: 'output_text'; text: string; annotations: Array<{ start_index: number; end_index: number; url: string }>; logprobs: Array<{ token: string }> };

function outputTexts(response: ResponsesObject): OutputText[] {
  return response.output.flatMap((item) => (item.type === 'message' ? (item.content.filter((c) => c.type === 'output_text') as unknown as OutputText[]) : []));
}

/** Streams events through the encoder as the endpoint does: the final response stored, then the terminal. */
function streamOf(events: AnswerEvent[], includeLogprobs: boolean) {
  const encoder = new ResponsesEventEncoder(shell, { idFor, includeEncrypted: true, includeLogprobs });
  const frames = events.flatMap((e) => encoder.push(e));
  encoder.stored(encoder.finalResponse(undefined, NOW_MS));
  frames.push(...responsesStreamTerminals(encoder).ended());
  return frames.map((f) => wire(f.data) as Data);
}

/** The events an OpenAI-compatible Chat stream decodes to: a chunk per token, its logprobs ahead of its text; the citations at the end. */
function chatOrderEvents({ answer, tokensByPart }: Planned): AnswerEvent[] {
  const events: AnswerEvent[] = [{ type: 'start', id: answer.id, model: answer.model, createdS: answer.createdS }];
  for (const event of answerEvents(answer)) {
    if (event.type === 'start' || event.type === 'logprobs' || event.type === 'annotation' || event.type === 'finish' || event.type === 'usage') continue;
    const tokens = event.type === 'text' ? tokensByPart.get(event.index) : undefined;
    if (!tokens) events.push(event);
    else for (const t of tokens) events.push({ type: 'logprobs', content: [t] }, { type: 'text', index: event.index, text: t.token });
  }
  for (const annotation of answer.annotations ?? []) events.push({ type: 'annotation', annotation });
  events.push({ type: 'finish', reason: answer.finishReason });
  return events;
}

/** Each output_text part's logprobs are exactly its tokens, its citations those that start in it, with offsets into its own text. */
function expectPlaced(response: ResponsesObject, { answer, tokensByPart }: Planned, includeLogprobs: boolean): void {
  const texts = outputTexts(response);
  const expectedTokens = [...tokensByPart.values()];
  expect(texts.map((t) => t.text)).toEqual(expectedTokens.map((ts) => ts.map((t) => t.token).join('')));
  texts.forEach((t, i) => expect(t.logprobs).toEqual(includeLogprobs ? expectedTokens[i] : []));
  let offset = 0;
  const placed: Array<{ url: string; start: number; end: number }> = [];
  texts.forEach((t) => {
    for (const a of t.annotations) {
      expect(a.start_index).toBeGreaterThanOrEqual(0);
      expect(a.start_index).toBeLessThan(t.text.length);
      placed.push({ url: a.url, start: a.start_index + offset, end: a.end_index + offset });
    }
    offset += t.text.length;
  });
  expect(placed).toEqual((answer.annotations ?? []).map((a) => ({ url: a.url, start: a.startIndex, end: a.endIndex })));
}

describe('the Responses codec: citations and logprobs of output_text parts', () => {
  it('a JSON response places them in the part they fall in, valid for the spec, and decodes back to the same answer', () => {
    fc.assert(fc.property(planned, fc.boolean(), (plan, includeLogprobs) => {
      const response = wire(encodeResponse(plan.answer, { shell, idFor, includeEncrypted: true, includeLogprobs, nowMs: NOW_MS }));
      validateResponse(response);
      expectPlaced(response, plan, includeLogprobs);
      const back = decodeResponse(response);
      expect(back.annotations).toEqual(plan.answer.annotations);
      expect(back.logprobs).toEqual(includeLogprobs ? plan.answer.logprobs : undefined);
    }), { numRuns: 200 });
  });

  it.each([
    { order: 'a Chat stream (logprobs ahead of each token)', events: chatOrderEvents, live: true },
    { order: 'a whole answer (logprobs after all text)', events: (p: Planned) => answerEvents(p.answer), live: false },
  ])('a stream in the order of $order: events valid for the spec, citations announced only while their part is open, final response the JSON one', ({ events, live }) => {
    fc.assert(fc.property(planned, fc.boolean(), (plan, includeLogprobs) => {
      const data = streamOf(events(plan), includeLogprobs);
      data.forEach((d) => validateResponseEvent(d));
      const final = data[data.length - 1].response!;
      expect(final).toEqual(wire(encodeResponse(collectAnswer(events(plan)), { shell, idFor, includeEncrypted: true, includeLogprobs, nowMs: NOW_MS })));
      expectPlaced(final, plan, includeLogprobs);
      // A citation is announced at most once, between its part's opening and its done event (one
      // for a part already closed reaches the final output only); the last text part's all are.
      const added = data.filter((d) => d.type === 'response.output_text.annotation.added');
      const all = outputTexts(final).flatMap((t) => t.annotations);
      expect(all).toEqual(expect.arrayContaining(added.map((d) => d.annotation)));
      const lastItem = final.output.at(-1);
      const lastContent = lastItem?.type === 'message' ? (lastItem.content.at(-1) as unknown as OutputText | { type: 'refusal' }) : undefined;
      expect(added.length).toBeGreaterThanOrEqual(lastContent?.type === 'output_text' ? lastContent.annotations.length : 0);
      for (const d of added) {
        const at = data.indexOf(d);
        const sameAt = (e: Data) => e.item_id === d.item_id && e.content_index === d.content_index;
        expect(data.findIndex((e) => e.type === 'response.content_part.added' && sameAt(e))).toBeLessThan(at);
        expect(data.findIndex((e) => e.type === 'response.output_text.done' && sameAt(e))).toBeGreaterThan(at);
      }
      // On a live stream the done events carry each part's logprobs (without bytes); logprobs that
      // come after their part closed (a whole answer's) reach the final output only.
      if (!live) return;
      const dones = data.filter((d) => d.type === 'response.output_text.done');
      expect(dones.map((d) => d.logprobs!.map((l) => l.token))).toEqual(outputTexts(final).map((t) => t.logprobs.map((l) => l.token)));
    }), { numRuns: 100 });
  });

  it('on a Chat-ordered stream each delta carries the logprobs of exactly its tokens; the replay of the stored response does too', () => {
    fc.assert(fc.property(planned, (plan) => {
      const data = streamOf(chatOrderEvents(plan), true);
      const deltasOf = (events: Data[]) => events.filter((d) => d.type === 'response.output_text.delta');
      for (const d of deltasOf(data)) expect(d.logprobs!.map((l) => l.token).join('')).toBe(d.delta);
      const final = data[data.length - 1].response!;
      const replayed = replayResponseFrames(wire(final)).map((f) => wire(f.data) as Data);
      replayed.forEach((d) => validateResponseEvent(d));
      expect(replayed[replayed.length - 1].response).toEqual(final);
      for (const d of deltasOf(replayed)) expect(d.logprobs!.map((l) => l.token).join('')).toBe(d.delta);
      expect(deltasOf(replayed).flatMap((d) => d.logprobs)).toEqual(deltasOf(data).flatMap((d) => d.logprobs));
      // The replay announces every citation, each while its part is open.
      expect(replayed.filter((d) => d.type === 'response.output_text.annotation.added').map((d) => d.annotation)).toEqual(outputTexts(final).flatMap((t) => t.annotations));
    }), { numRuns: 100 });
  });

  it('a citation that comes before any text waits for the first text part; refusal logprobs have no place and are left out', () => {
    const citation: UrlCitation = { type: 'url_citation', url: 'https://example.com/a', title: 'A', startIndex: 0, endIndex: 2 };
    const lp = (t: string): TokenLogprob => ({ token: t, logprob: -1, bytes: null, top_logprobs: [] });
    const data = streamOf([
      { type: 'start', id: 'x', model: 'm' },
      { type: 'annotation', annotation: citation },
      { type: 'logprobs', refusal: [lp('No')] },
      { type: 'refusal', index: 0, text: 'No' },
      { type: 'logprobs', content: [lp('Hi')] },
      { type: 'text', index: 1, text: 'Hi' },
      { type: 'finish', reason: 'stop' },
    ], true);
    data.forEach((d) => validateResponseEvent(d));
    const final = data[data.length - 1].response!;
    const message = final.output[0] as { content: unknown[] };
    expect(message.content).toEqual([
      { type: 'refusal', refusal: 'No' },
      { type: 'output_text', text: 'Hi', annotations: [{ type: 'url_citation', start_index: 0, end_index: 2, url: citation.url, title: 'A' }], logprobs: [{ token: 'Hi', logprob: -1, bytes: [], top_logprobs: [] }] },
    ]);
    expect(data.filter((d) => d.type === 'response.output_text.annotation.added')).toHaveLength(1);
  });
});

describe('the Responses codec: logprobs asked upstream', () => {
  const decode = (body: Record<string, unknown>) => decodeResponsesRequest(parseCreateResponseRequest({ model: 'gpt-test', input: 'hi', ...body }));
  const chatOf = (body: Record<string, unknown>) => encodeChatRequest(callFor(decode(body), heldOutputLimit(100)), { thinkingFields: false }).request as Record<string, unknown>;
  const responsesOf = (body: Record<string, unknown>) => encodeResponsesRequest(callFor(decode(body), heldOutputLimit(100))).request;

  it('include of message.output_text.logprobs, or top_logprobs above 0, → Chat logprobs: true with top_logprobs; neither → no logprobs', () => {
    expect(chatOf({ include: ['message.output_text.logprobs'], top_logprobs: 5 })).toMatchObject({ logprobs: true, top_logprobs: 5 });
    expect(chatOf({ include: ['message.output_text.logprobs'] })).toMatchObject({ logprobs: true });
    expect(chatOf({ include: ['message.output_text.logprobs'] })).not.toHaveProperty('top_logprobs');
    expect(chatOf({ top_logprobs: 3 })).toMatchObject({ logprobs: true, top_logprobs: 3 });
    expect(decode({ top_logprobs: 3 }).includeLogprobs).toBe(true);
    for (const body of [{}, { top_logprobs: 0 }, { include: ['reasoning.encrypted_content'] }]) {
      expect(chatOf(body)).not.toHaveProperty('logprobs');
      expect(chatOf(body)).not.toHaveProperty('top_logprobs');
      expect(decode(body).includeLogprobs).toBe(false);
    }
  });

  it('a Responses upstream gets them back as asked, the other include values kept', () => {
    expect(responsesOf({ include: ['reasoning.encrypted_content', 'message.output_text.logprobs'], top_logprobs: 4 })).toMatchObject({ top_logprobs: 4, include: ['reasoning.encrypted_content', 'message.output_text.logprobs'] });
    expect(responsesOf({ include: ['reasoning.encrypted_content'] })).toMatchObject({ include: ['reasoning.encrypted_content'] });
    expect(responsesOf({})).not.toHaveProperty('top_logprobs');
  });
});
