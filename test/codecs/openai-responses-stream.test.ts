import fc from 'fast-check';
import {
  decodeResponse,
  decodeResponsesRequest,
  encodeResponse,
  replayResponseFrames,
  responseShell,
  responsesStreamTerminals,
  ResponsesEventEncoder,
  type ResponsesObject,
} from '../../lambda/codecs/openai-responses';
import { answerEvents, collectAnswer, type Answer, type AnswerEvent } from '../../lambda/core/answer';
import { sseFrameText, type SseFrame } from '../../lambda/core/sse';
import { parseCreateResponseRequest } from '../../lambda/contract/responses';
import { ResponseIds } from '../../lambda/responses/response-ids';
import { validateResponse, validateResponseEvent } from '../support/openai-schema';
import { answer, reasoningPart, text, textPart, toolCallPart, usage } from './arbitraries';

const NOW_MS = 1_800_000_000_000;
const REQUEST = parseCreateResponseRequest({ model: 'gpt-test', input: 'hi', tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }], include: ['reasoning.encrypted_content'], metadata: { k: 'v' } });
const DECODED = decodeResponsesRequest(REQUEST);

function setup(includeEncrypted = true) {
  const ids = new ResponseIds();
  const idFor = (prefix: 'rs' | 'msg' | 'fc', i: number) => `${prefix}_${ids.responseId.slice(5)}_o${i}`;
  const shell = responseShell(REQUEST, DECODED, { id: ids.responseId, model: 'gpt-test', createdAtMs: NOW_MS });
  return { ids, idFor, shell, encoder: new ResponsesEventEncoder(shell, { idFor, includeEncrypted }) };
}

type Data = { type: string; sequence_number: number; output_index?: number; item?: { id: string }; response?: ResponsesObject; [k: string]: unknown };

/** Streams an answer; the endpoint's part: the final response stored (as given) before the terminal. */
function stream(a: Answer, includeEncrypted = true, store = (r: ResponsesObject) => r) {
  const s = setup(includeEncrypted);
  const frames: SseFrame[] = answerEvents(a).flatMap((e) => s.encoder.push(e));
  s.encoder.stored(store(s.encoder.finalResponse(undefined, NOW_MS)));
  frames.push(...responsesStreamTerminals(s.encoder).ended());
  return { ...s, frames, data: frames.map((f) => f.data as Data) };
}

/** Every ordering rule clients rely on, checked on one stream. */
function checkOrder(data: Data[]) {
  expect(data.map((d) => d.sequence_number)).toEqual(data.map((_, i) => i));
  expect(data.slice(0, 2).map((d) => d.type)).toEqual(['response.created', 'response.in_progress']);
  let open: number | undefined;
  const done = new Set<number>();
  for (const d of data.slice(2, -1)) {
    if (d.type === 'response.output_item.added') {
      expect(open).toBeUndefined();
      expect(d.output_index).toBe(done.size);
      open = d.output_index;
    } else {
      expect(d.output_index).toBe(open);
      if (d.type === 'response.output_item.done') {
        done.add(open!);
        open = undefined;
      }
    }
  }
  expect(open).toBeUndefined();
}

const anyAnswer = answer(
  fc.array(fc.oneof(textPart, reasoningPart, toolCallPart, fc.record({ type: fc.constant('refusal' as const), text })), { maxLength: 6 }),
  fc.constantFrom('stop', 'length', 'tool_calls', 'refusal'),
  fc.option(usage({ serverTools: false, tier: false }), { nil: undefined }),
);

describe('the Responses codec: stream events', () => {
  it('writes events valid for the OpenAI spec, numbered, in order, named as their type; the final response is the JSON one', () => {
    fc.assert(fc.property(anyAnswer, fc.boolean(), (a, includeEncrypted) => {
      const { frames, data, idFor, shell } = stream(a, includeEncrypted);
      data.forEach((d) => validateResponseEvent(JSON.parse(JSON.stringify(d))));
      frames.forEach((f) => expect(sseFrameText(f).startsWith(`event: ${(f.data as Data).type}\ndata: {`)).toBe(true));
      checkOrder(data);
      const final = data[data.length - 1].response!;
      expect(data[data.length - 1].type).toBe(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed');
      validateResponse(JSON.parse(JSON.stringify(final)));
      // The items each output_item.done carried are the final output.
      expect(data.filter((d) => d.type === 'response.output_item.done').map((d) => d.item)).toEqual(final.output);
      const collected = collectAnswer(answerEvents(a));
      expect(final).toEqual(encodeResponse(collected, { shell, idFor, includeEncrypted, nowMs: NOW_MS }));
      // Replayed from the store (GET ?stream=true), the same events.
      expect(replayResponseFrames(JSON.parse(JSON.stringify(final)))).toEqual(JSON.parse(JSON.stringify(frames)));
    }), { numRuns: 200 });
  });

  it('puts a reasoning item where the provider thought, with summary events, and encrypted_content only when include asks', () => {
    const events: AnswerEvent[] = [
      { type: 'start', id: 'x', model: 'claude' },
      { type: 'reasoning', index: 0, text: 'Run ' },
      { type: 'reasoning', index: 0, text: 'it.' },
      { type: 'reasoning_signature', index: 0, signature: 'EqQBCkYIBxgC' },
      { type: 'reasoning_redacted', index: 1, data: 'EmwKAhgB' },
      { type: 'tool_call_start', index: 2, id: 'toolu_1', name: 'exec_command' },
      { type: 'tool_call_delta', index: 2, arguments: '{"cmd":"ls"}' },
      { type: 'finish', reason: 'tool_calls' },
    ];
    for (const includeEncrypted of [true, false]) {
      const { encoder } = setup(includeEncrypted);
      const data = [...events.flatMap((e) => encoder.push(e)), ...encoder.ended()].map((f) => f.data as Data);
      data.forEach((d) => validateResponseEvent(JSON.parse(JSON.stringify(d))));
      expect(data.map((d) => d.type)).toEqual([
        'response.created', 'response.in_progress',
        'response.output_item.added', 'response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta', 'response.reasoning_summary_text.delta',
        'response.reasoning_summary_text.done', 'response.reasoning_summary_part.done', 'response.output_item.done',
        'response.output_item.added', 'response.output_item.done',
        'response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done',
        'response.completed',
      ]);
      const done = data.filter((d) => d.type === 'response.output_item.done').map((d) => d.item as Record<string, unknown>);
      expect(done.map((i) => i.type)).toEqual(['reasoning', 'reasoning', 'function_call']);
      expect(done[0].summary).toEqual([{ type: 'summary_text', text: 'Run it.' }]);
      expect('encrypted_content' in done[0]).toBe(includeEncrypted);
      expect('encrypted_content' in done[1]).toBe(includeEncrypted);
      // Sent back, the items give the provider its blocks unchanged (checked end to end in openai-responses-requests.test.ts).
      if (includeEncrypted) expect(decodeResponse(data[data.length - 1].response!).parts.slice(0, 2)).toEqual([{ type: 'reasoning', text: 'Run it.', signature: 'EqQBCkYIBxgC' }, { type: 'reasoning', text: '', redactedData: 'EmwKAhgB' }]);
    }
  });

  it('ends with response.failed carrying the stored response: no done events for the cut item, delivered output incomplete', () => {
    const { encoder } = setup();
    const frames = [
      { type: 'start', id: 'x', model: 'm' },
      { type: 'text', index: 0, text: 'Hel' },
      { type: 'tool_call_start', index: 1, id: 'call_1', name: 'f' },
      { type: 'tool_call_delta', index: 1, arguments: '{"a":' },
      { type: 'usage', usage: { inputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 3 } },
    ].flatMap((e) => encoder.push(e as AnswerEvent));
    const error = { status: 502, type: 'api_error', code: 'upstream_error', param: null, message: 'The upstream failed mid-stream.' };
    const stored = { ...encoder.failedResponse(error, undefined, NOW_MS), store: false };
    encoder.stored(stored);
    const end = responsesStreamTerminals(encoder).failed(error).map((f) => f.data as Data);
    expect(end.map((d) => d.type)).toEqual(['response.failed']);
    expect(end[0].response).toBe(stored);
    expect(end[0].sequence_number).toBe(frames.length);
    validateResponseEvent(JSON.parse(JSON.stringify(end[0])));
    expect(stored).toMatchObject({ status: 'failed', error: { code: 'server_error', message: error.message }, usage: { input_tokens: 5, output_tokens: 3 } });
    expect(stored.output.map((i) => [i.type, i.status])).toEqual([['message', 'completed'], ['function_call', 'incomplete']]);
    expect(frames.map((f) => (f.data as Data).type)).not.toContain('response.function_call_arguments.done');
    expect(setup().encoder.failedResponse({ ...error, status: 429 }).error?.code).toBe('rate_limit_exceeded');
    // Replayed from the store: the same events, the cut call without its done events.
    const live = JSON.parse(JSON.stringify([...frames.map((f) => f.data), ...end]));
    expect(JSON.parse(JSON.stringify(replayResponseFrames({ ...stored, store: true }, true).map((f) => f.data)))).toEqual(live.map((d: Data) => (d.response ? { ...d, response: { ...d.response, store: true } } : d)));
  });

  it('ends a cut answer with response.incomplete, only the cut item incomplete, and counts cache writes as Responses clients are promised', () => {
    const a: Answer = { id: 'x', model: 'm', createdS: 1, parts: [{ type: 'reasoning', text: 't', signature: 's' }, { type: 'text', text: 'partial' }], finishReason: 'length', usage: { inputTokens: 3, cacheReadTokens: 50, cacheWriteTokens: 100, cacheWrite1hTokens: 0, outputTokens: 9 } };
    const { data } = stream(a);
    const final = data[data.length - 1];
    expect(final.type).toBe('response.incomplete');
    expect(final.response).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, completed_at: null, usage: { input_tokens: 153, input_tokens_details: { cached_tokens: 50, cache_write_tokens: 100 } } });
    expect(final.response!.output.map((i) => i.status)).toEqual(['completed', 'incomplete']);
  });

  it('writes the response the endpoint stored into the terminal event (store: false when the write failed)', () => {
    const { data } = stream({ id: 'x', model: 'm', createdS: 1, parts: [{ type: 'text', text: 'hi' }], finishReason: 'stop' }, true, (r) => ({ ...r, store: false }));
    expect(data[data.length - 1].response).toMatchObject({ status: 'completed', store: false, completed_at: NOW_MS / 1000 });
  });
});

describe('the Responses codec: whole responses', () => {
  it('decodes the Response it encodes (valid for the OpenAI spec) into the same answer', () => {
    const roundTrippable = answer(
      fc.array(fc.oneof(textPart, reasoningPart, toolCallPart, fc.record({ type: fc.constant('refusal' as const), text })), { maxLength: 6 }),
      fc.constantFrom('stop', 'length', 'tool_calls', 'refusal'),
      fc.option(usage({ serverTools: false, tier: false, cacheWrites: false }), { nil: undefined }),
    ).map((a) => {
      const calls = a.parts.some((p) => p.type === 'tool_call');
      const finishReason = (a.finishReason === 'tool_calls' || a.finishReason === 'stop') ? (calls ? 'tool_calls' : 'stop') : a.finishReason;
      return { ...a, finishReason, ...(a.usage && { usage: { ...a.usage, reasoningTokens: a.usage.reasoningTokens ?? 0 } }) } as Answer;
    });
    fc.assert(fc.property(roundTrippable, (a) => {
      const { shell, idFor } = setup();
      const wire = encodeResponse(a, { shell: { ...shell, id: a.id, model: a.model, created_at: a.createdS }, idFor, includeEncrypted: true, nowMs: NOW_MS });
      validateResponse(JSON.parse(JSON.stringify(wire)));
      expect(decodeResponse(JSON.parse(JSON.stringify(wire)))).toEqual(a);
    }), { numRuns: 200 });
  });

  it("answers the estimated usage when the provider reported none, and the provider's service tier in OpenAI's words", () => {
    const { shell, idFor } = setup();
    const a: Answer = { id: 'x', model: 'm', createdS: 1, parts: [{ type: 'text', text: 'hi' }], finishReason: 'stop' };
    expect(encodeResponse(a, { shell, idFor, includeEncrypted: false, estimatedUsage: { inputTokens: 7, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 1 } }).usage).toMatchObject({ input_tokens: 7, output_tokens: 1, total_tokens: 8 });
    expect(encodeResponse(a, { shell, idFor, includeEncrypted: false }).usage).toBeUndefined();
    const tiered = (serviceTier: string) => encodeResponse({ ...a, usage: { inputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 1, serviceTier } }, { shell, idFor, includeEncrypted: false }).service_tier;
    expect([tiered('priority'), tiered('standard')]).toEqual(['priority', 'default']);
  });
});
