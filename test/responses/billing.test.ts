import type { CatalogFile } from '../../lambda/catalog';
import { OVERLOADED_MID_STREAM, sse } from '../providers/anthropic/transcripts';
import { books, expectBooksBalance, expectErrorBody, sleep } from '../reliability/support';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { anthropicAnswer, expectWellFormedStream, modelEntry, openAiAnswer, parseResponseEvents, StandIn, warmResponseValidators } from './support';

/**
 * Money on `/v1/responses`: every way a request ends settles exactly once and the books
 * (balance = top-ups − ledger) hold — answers, client aborts, upstream failures, the deadline.
 */
const MAX_REQUEST_MS = 2_500;
const openai = new StandIn('http1');
const anthropic = new StandIn('http1');
let gw: TestGateway;

beforeAll(async () => {
  warmResponseValidators();
  const [openaiUrl, anthropicUrl] = await Promise.all([openai.start(), anthropic.start()]);
  openai.handler = (request) => openAiAnswer(request);
  anthropic.handler = (request) => anthropicAnswer(request);
  const catalog: CatalogFile = {
    models: {
      'gpt-test': modelEntry({ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'upstream-model' }),
      'claude-test': modelEntry({ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-standin' }, 'anthropic'),
      'mock-test': modelEntry({ provider: 'mock', model: 'mock-test' }),
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog), maxRequestMs: MAX_REQUEST_MS });
});

afterAll(async () => {
  await gw.stop();
  await Promise.all([openai.stop(), anthropic.stop()]);
});

function post(key: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${gw.baseUrl}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

const richAccount = () => createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 10_000_000 });

async function ledgerSettled(accountId: string, count: number) {
  for (let i = 0; i < 100; i++) {
    const b = await books(gw, accountId);
    if (b.requests.length >= count && b.inFlight === 0) return b;
    await sleep(50);
  }
  throw new Error(`${count} requests never settled`);
}

describe('billing of /v1/responses', () => {
  it('bills each answered request once, from the provider’s usage, JSON and streamed, on every route', async () => {
    const acct = await richAccount();
    const bodies = [
      { model: 'gpt-test', input: 'one' },
      { model: 'gpt-test', input: 'two', stream: true },
      { model: 'claude-test', input: 'three', stream: true },
      { model: 'mock-test', input: 'four', tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: {} } }] },
      { model: 'gpt-test', input: Array.from({ length: 30 }, (_, i) => `w${i}`).join(' '), max_output_tokens: 20, stream: true },
    ];
    for (const body of bodies) {
      const res = await post(acct.key, body);
      expect(res.status).toBe(200);
      await res.text();
    }
    const b = await ledgerSettled(acct.accountId, bodies.length);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(bodies.length);
    expect(b.requests.map((r) => r.status)).toEqual(Array(bodies.length).fill('completed'));
    const openAiStreamed = b.requests.find((r) => r.route === 'openai-compatible:upstream-model' && r.stream);
    expect(openAiStreamed).toMatchObject({ promptTokens: 40, completionTokens: 9, cachedTokens: 12 });
    expect(b.balance).toBeLessThan(b.topUps);
  });

  it('bills what was delivered when the client goes away mid-stream, and stores nothing', async () => {
    const acct = await richAccount();
    const words = Array.from({ length: 40 }, (_, i) => `word${i} `);
    openai.handler = (request) => openAiAnswer(request, { pieces: words, gapMs: 40 });
    try {
      const abort = new AbortController();
      const res = await post(acct.key, { model: 'gpt-test', input: 'long story', stream: true }, abort.signal);
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes('response.output_text.delta')) text += new TextDecoder().decode((await reader.read()).value);
      const id = /"id":"(resp_[0-9a-f]+)"/.exec(text)![1];
      abort.abort();
      const b = await ledgerSettled(acct.accountId, 1);
      expectBooksBalance(b);
      // 'interrupted' when the upstream's abort wins the race with the client's cancel in the pipeline: billed the same.
      expect(['aborted', 'interrupted']).toContain(b.requests[0].status);
      expect(b.requests[0].amountMicroUsd).toBeLessThan(0);
      const stored = await fetch(`${gw.baseUrl}/responses/${id}`, { headers: { authorization: `Bearer ${acct.key}` } });
      expect(stored.status).toBe(404);
    } finally {
      openai.handler = (request) => openAiAnswer(request);
    }
  });

  it('ends with response.failed (server_error, partial output, usage) when the upstream fails mid-stream, and bills what was delivered', async () => {
    const acct = await richAccount();
    // The stand-in's stream stops after the role chunk and two pieces, without [DONE].
    openai.handler = (request) => openAiAnswer(request, { pieces: ['Partial ', 'answer ', 'never ', 'finished'], cutAfter: 3 });
    try {
      const res = await post(acct.key, { model: 'gpt-test', input: 'x', stream: true });
      expect(res.status).toBe(200);
      const events = parseResponseEvents(await res.text());
      const last = expectWellFormedStream(events);
      expect(last.type).toBe('response.failed');
      expect(last.response.status).toBe('failed');
      expect(last.response.error.code).toBe('server_error');
      expect(last.response.output[0]).toMatchObject({ type: 'message', status: 'incomplete' });
      expect(last.response.output[0].content[0].text).toBe('Partial answer ');
      expect(events.some((e) => e.type === 'response.output_item.done')).toBe(false);
      expect(last.response.usage.output_tokens).toBeGreaterThan(0);
      const b = await ledgerSettled(acct.accountId, 1);
      expectBooksBalance(b);
      expect(b.requests[0].status).toBe('interrupted');
      expect(b.requests[0].amountMicroUsd).toBeLessThan(0);
      // A failed response is stored too, as OpenAI keeps it.
      const stored = await (await fetch(`${gw.baseUrl}/responses/${last.response.id}`, { headers: { authorization: `Bearer ${acct.key}` } })).json();
      expect(stored.status).toBe('failed');
    } finally {
      openai.handler = (request) => openAiAnswer(request);
    }
  });

  it('ends with response.failed when Anthropic sends an error event mid-stream', async () => {
    const acct = await richAccount();
    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(OVERLOADED_MID_STREAM) });
    try {
      const res = await post(acct.key, { model: 'claude-test', input: 'x', stream: true });
      const last = expectWellFormedStream(parseResponseEvents(await res.text()));
      expect(last.type).toBe('response.failed');
      expect(last.response.error.code).toBe('server_error');
      expectBooksBalance(await ledgerSettled(acct.accountId, 1));
    } finally {
      anthropic.handler = (request) => anthropicAnswer(request);
    }
  });

  it('ends a stream that reaches the gateway’s longest request time with response.failed, and settles it', async () => {
    const acct = await richAccount();
    const words = Array.from({ length: 60 }, (_, i) => `slow${i} `);
    openai.handler = (request) => openAiAnswer(request, { pieces: words, gapMs: 100 });
    try {
      const started = Date.now();
      const res = await post(acct.key, { model: 'gpt-test', input: 'x', stream: true });
      const last = expectWellFormedStream(parseResponseEvents(await res.text()));
      const tookMs = Date.now() - started;
      expect(last.type).toBe('response.failed');
      expect(last.response.error.message).toMatch(/longest request time/);
      expect(tookMs).toBeLessThan(MAX_REQUEST_MS + 1_500);
      const b = await ledgerSettled(acct.accountId, 1);
      expectBooksBalance(b);
      expect(b.requests[0].status).toBe('interrupted');
    } finally {
      openai.handler = (request) => openAiAnswer(request);
    }
  });

  it('releases the whole hold when the upstream fails before its first byte, with an HTTP error', async () => {
    const acct = await richAccount();
    openai.handler = () => ({ status: 500, headers: { 'content-type': 'application/json' }, parts: ['{"error":{"message":"boom"}}'] });
    try {
      const res = await post(acct.key, { model: 'gpt-test', input: 'x', stream: true });
      expect(res.status).toBe(502);
      expectErrorBody(await res.json(), 'api_error', 'upstream_error');
      const b = await ledgerSettled(acct.accountId, 1);
      expectBooksBalance(b);
      expect(b.requests[0]).toMatchObject({ status: 'failed', amountMicroUsd: 0 });
    } finally {
      openai.handler = (request) => openAiAnswer(request);
    }
  });

  it('answers 429 with retry-after before any stream when the account’s limit is reached', async () => {
    const acct = await createAccount(gw, { tier: 'free', rpm: 1, tpm: 100_000 });
    expect((await post(acct.key, { model: 'mock-test', input: 'x' })).status).toBe(200);
    const res = await post(acct.key, { model: 'mock-test', input: 'x', stream: true });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expectErrorBody(await res.json(), 'rate_limit_exceeded', 'rate_limit_exceeded');
    expectBooksBalance(await ledgerSettled(acct.accountId, 1));
  });
  it('answers and bills a response whose storage write fails, says store: false, and keeps nothing readable', async () => {
    const acct = await richAccount();
    const table = gw.gateway.stores.responses.tableName;
    let failed = 0;
    let failing = true;
    gw.dynamo.intercept(async (operation, input, next) => {
      const target = operation === 'PutItem' ? input.TableName : operation === 'BatchWriteItem' ? Object.keys(input.RequestItems as object)[0] : undefined;
      if (!failing || target !== table) return next();
      failed++;
      throw Object.assign(new Error('storage unavailable'), { name: 'InternalServerError', $metadata: { httpStatusCode: 500, attempts: 3 } });
    });
    const json = await post(acct.key, { model: 'gpt-test', input: 'keep this' });
    expect(json.status).toBe(200);
    const body = await json.json();
    expect(body).toMatchObject({ status: 'completed', store: false });
    const streamed = await post(acct.key, { model: 'gpt-test', input: 'and this', stream: true });
    const last = expectWellFormedStream(parseResponseEvents(await streamed.text()));
    expect(last.type).toBe('response.completed');
    expect(last.response.store).toBe(false);
    expect(failed).toBe(2);
    failing = false;
    for (const id of [body.id, last.response.id]) {
      expect((await fetch(`${gw.baseUrl}/responses/${id}`, { headers: { authorization: `Bearer ${acct.key}` } })).status).toBe(404);
    }
    const b = await ledgerSettled(acct.accountId, 2);
    expectBooksBalance(b);
    expect(b.requests.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(gw.logs.some((line) => line.includes('storage unavailable'))).toBe(true);
  });
});
