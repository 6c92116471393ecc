import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CatalogFile } from '../../lambda/catalog';
import { freePort } from '../../lambda/entry/local-server';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { validateChunk, validateCompletion } from '../support/openai-schema';
import { completionBody, startUpstream, streamEvents } from '../support/upstream';
import { books, expectBooksBalance, expectErrorBody, leaks, parseSse, postChat, sleep } from './support';

/**
 * Every upstream fault of issue 7, for JSON and for streams, through the local gateway against
 * a stand-in on loopback. For each: what the client sees, that the hold was released or settled
 * exactly (one ledger item, balance = ledger), and that the next request on the gateway succeeds.
 */

// Short distinctive markers: V8's JSON.parse messages quote about ten characters of the text.
const PROMPT = 'Pw4Jm2 what the user wrote';
const COMPLETION = 'Zq7Kx9 what the model wrote';
const HUGE = 'x'.repeat(1024 * 1024);
const MAX_TOKENS = 20;
/** Output at $1,000 per million tokens (1,000 µUSD a token), input free: holds are exact. */
const HOLD = MAX_TOKENS * 1000;
const CREDITS = 1_000_000;

type Handler = (body: { model: string; stream?: boolean }, res: ServerResponse, req: IncomingMessage) => unknown;

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

const sse = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream' });
const events = (model: string) => streamEvents(model, [`${COMPLETION} `, 'and ', 'more ', 'words']);

/** What the stand-in does for each upstream model id; the gateway's model `f-<id>` routes to it. */
const BEHAVIOUR: Record<string, Handler> = {
  ok: (body, res) => {
    if (!body.stream) return json(res, 200, completionBody(body.model, COMPLETION));
    sse(res);
    res.end(events(body.model).join(''));
  },
  reset_mid_body: async (body, res) => {
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '5000' });
      res.write(JSON.stringify(completionBody(body.model, COMPLETION)).slice(0, 60));
    } else {
      sse(res);
      res.write(events(body.model).slice(0, 3).join(''));
    }
    await sleep(30);
    res.socket?.destroy();
  },
  status_500: (_b, res) => json(res, 500, { error: { message: 'The server had an error', type: 'server_error' } }),
  status_502: (_b, res) => json(res, 502, { error: { message: 'Bad gateway', type: 'server_error' } }),
  status_503: (_b, res) => json(res, 503, { error: { message: 'The engine is overloaded', type: 'server_error' } }),
  status_429_retry_after: (_b, res) => json(res, 429, { error: { message: 'Rate limit reached', type: 'requests' } }, { 'retry-after': '7' }),
  status_429: (_b, res) => json(res, 429, { error: { message: 'Rate limit reached', type: 'requests' } }),
  status_400: (_b, res) =>
    json(res, 400, { error: { message: "Invalid 'temperature': decimal above maximum value.", type: 'invalid_request_error', param: 'temperature', code: 'decimal_above_max_value' } }),
  not_json: (_b, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body>${COMPLETION} 502 Bad Gateway</body></html>`),
  cut_without_done: (body, res) => {
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, COMPLETION)).slice(0, 80));
      return;
    }
    sse(res);
    res.end(events(body.model).slice(0, 3).join(''));
  },
  error_event: (body, res) => {
    if (!body.stream) return json(res, 200, { error: { message: 'The model crashed', type: 'server_error' } });
    sse(res);
    res.end(`${events(body.model).slice(0, 3).join('')}data: {"error":{"message":"The model crashed","type":"server_error"}}\n\n`);
  },
  event_not_json: (body, res) => {
    if (!body.stream) return res.writeHead(200, { 'content-type': 'application/json' }).end(`{"oops": ${COMPLETION}`);
    sse(res);
    res.end(`${events(body.model).slice(0, 3).join('')}data: {"choices": ${COMPLETION}\n\n`);
  },
  first_event_not_json: (body, res) => {
    if (!body.stream) return res.writeHead(200, { 'content-type': 'application/json' }).end(`{"oops": ${COMPLETION}`);
    sse(res);
    res.end(`data: ${COMPLETION}\n\n`);
  },
  first_byte_never: () => undefined,
  stall_after_chunks: (body, res) => {
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify(completionBody(body.model, COMPLETION)).slice(0, 60));
      return;
    }
    sse(res);
    res.write(events(body.model).slice(0, 3).join(''));
  },
  huge_chunk: (body, res) => {
    if (!body.stream) return json(res, 200, completionBody(body.model, HUGE));
    sse(res);
    res.end(streamEvents(body.model, [HUGE]).join(''));
  },
};

type Expect =
  | { kind: 'error'; status: number; type: string; code: string; retryAfter?: string | null; param?: string; message?: RegExp }
  | { kind: 'sse_error'; code: string }
  | { kind: 'ok'; content: string };

interface Fault {
  name: string;
  json: Expect;
  stream: Expect;
}

const upstreamError = { kind: 'error', status: 502, type: 'api_error', code: 'upstream_error' } as const;
const timeout = { kind: 'error', status: 504, type: 'api_error', code: 'upstream_timeout' } as const;
const overloaded = { kind: 'error', status: 503, type: 'server_overloaded', code: 'server_overloaded' } as const;

const FAULTS: Fault[] = [
  { name: 'connection_refused', json: upstreamError, stream: upstreamError },
  { name: 'reset_mid_body', json: upstreamError, stream: { kind: 'sse_error', code: 'upstream_error' } },
  { name: 'status_500', json: upstreamError, stream: upstreamError },
  { name: 'status_502', json: upstreamError, stream: upstreamError },
  { name: 'status_503', json: overloaded, stream: overloaded },
  { name: 'status_429_retry_after', json: { ...overloaded, retryAfter: '7' }, stream: { ...overloaded, retryAfter: '7' } },
  { name: 'status_429', json: { ...overloaded, retryAfter: null }, stream: { ...overloaded, retryAfter: null } },
  {
    name: 'status_400',
    json: { kind: 'error', status: 400, type: 'invalid_request_error', code: 'invalid_value', param: 'temperature', message: /decimal above maximum/ },
    stream: { kind: 'error', status: 400, type: 'invalid_request_error', code: 'invalid_value', param: 'temperature', message: /decimal above maximum/ },
  },
  { name: 'not_json', json: upstreamError, stream: upstreamError },
  { name: 'cut_without_done', json: upstreamError, stream: { kind: 'sse_error', code: 'upstream_error' } },
  { name: 'error_event', json: upstreamError, stream: { kind: 'sse_error', code: 'upstream_error' } },
  { name: 'event_not_json', json: upstreamError, stream: { kind: 'sse_error', code: 'upstream_error' } },
  { name: 'first_event_not_json', json: upstreamError, stream: upstreamError },
  { name: 'first_byte_never', json: timeout, stream: timeout },
  { name: 'stall_after_chunks', json: timeout, stream: { kind: 'sse_error', code: 'upstream_timeout' } },
  { name: 'huge_chunk', json: { kind: 'ok', content: HUGE }, stream: { kind: 'ok', content: HUGE } },
];

let gw: TestGateway;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const keys: string[] = [];

beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => void BEHAVIOUR[body.model](body, res, _req));
  const dead = `http://127.0.0.1:${await freePort()}/v1`;
  const models: CatalogFile['models'] = {};
  for (const name of ['ok', ...FAULTS.map((f) => f.name)]) {
    models[`f-${name}`] = {
      owned_by: 'test',
      pricing: { input_per_mtok: 0, output_per_mtok: 1000 },
      context_window: 100_000,
      max_output_tokens: 100,
      routes: [{ provider: 'openai-compatible', base_url: name === 'connection_refused' ? dead : upstream.url, model: name }],
    };
  }
  gw = await startTestGateway({ catalog: catalogOf({ models }), timeouts: { firstByteMs: 300, idleMs: 300, totalMs: 1000 } });
});

afterAll(async () => {
  await gw?.stop();
  await upstream?.close();
});

const cases = FAULTS.flatMap((f) => [
  { fault: f.name, mode: 'json' as const, expected: f.json },
  { fault: f.name, mode: 'stream' as const, expected: f.stream },
]);

describe('upstream faults', () => {
  it.each(cases)('$fault ($mode)', async ({ fault, mode, expected }) => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: CREDITS });
    keys.push(acct.key);
    const stream = mode === 'stream';
    const res = await postChat(gw, acct.key, { model: `f-${fault}`, messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS, stream });
    const requestId = res.headers.get('x-request-id');
    expect(requestId).toMatch(/^req_/);
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('10000');
    const text = await res.text();

    if (expected.kind === 'error') {
      expect(res.status).toBe(expected.status);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = JSON.parse(text);
      expectErrorBody(body, expected.type, expected.code);
      if (expected.retryAfter !== undefined) expect(res.headers.get('retry-after')).toBe(expected.retryAfter);
      if (expected.param) expect(body.error.param).toBe(expected.param);
      if (expected.message) expect(body.error.message).toMatch(expected.message);
    } else {
      expect(res.status).toBe(200);
      if (!stream) {
        const completion = JSON.parse(text);
        validateCompletion(completion);
        expect(completion.choices[0].message.content).toBe(expected.kind === 'ok' ? expected.content : '');
      } else {
        expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
        const payloads = parseSse(text);
        expect(payloads.at(-1)).toBe('[DONE]');
        expect(payloads.filter((p) => p === '[DONE]')).toHaveLength(1);
        const data = payloads.slice(0, -1) as Array<Record<string, any>>;
        if (expected.kind === 'sse_error') {
          const last = data.at(-1)!;
          expectErrorBody(last, 'api_error', expected.code);
          data.slice(0, -1).forEach(validateChunk);
          expect(data.slice(0, -1).length).toBeGreaterThan(0);
        } else {
          data.forEach(validateChunk);
          expect(data.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(expected.content);
        }
      }
    }

    // The books: one ledger item for this request, the balance exactly its ledger.
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(1);
    const item = b.requests[0];
    expect(item.id).toBe(requestId);
    expect(item.holdMicroUsd).toBe(HOLD);
    if (expected.kind === 'error') {
      // Failed before the first byte: the whole hold is back.
      expect(item.amountMicroUsd).toBe(0);
      expect(b.balance).toBe(CREDITS);
      expect(item).toMatchObject({ status: 'failed', httpStatus: expected.status, errorCode: expected.code });
    } else if (expected.kind === 'sse_error') {
      // Cut short after some words: billed for the prompt and what was produced (estimated), never beyond the hold.
      expect(item.amountMicroUsd).toBeLessThan(0);
      expect(item).toMatchObject({ status: 'interrupted', errorCode: expected.code, usageEstimated: true });
    } else {
      // completionBody / streamEvents report the usage; the provider's numbers are billed.
      expect(item.usageEstimated).toBeUndefined();
      expect(item.amountMicroUsd).toBe(-(item.completionTokens! * 1000));
    }

    // The process is healthy: the next request on the same gateway and account succeeds.
    const next = await postChat(gw, acct.key, { model: 'f-ok', messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS, stream });
    expect(next.status).toBe(200);
    const nextText = await next.text();
    expect(nextText).toContain(COMPLETION);
    const after = await books(gw, acct.accountId);
    expectBooksBalance(after);
    expect(after.requests).toHaveLength(2);
  });

  it('keeps keys, prompts and completions out of every log line', () => {
    expect(gw.logs.length).toBeGreaterThan(cases.length);
    expect(leaks(gw.logs, [...keys, 'Pw4Jm2', 'Zq7Kx9', 'xxxxxxxxxx'])).toEqual([]);
  });
});
