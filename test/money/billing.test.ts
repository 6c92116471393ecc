import type { ServerResponse } from 'node:http';
import type { CatalogFile } from '../../lambda/catalog';
import { warmTokenizer } from '../../lambda/money/tokens';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { completionBody, startUpstream } from '../support/upstream';
import { books, expectBooksBalance, parseSse, postChat, sleep } from '../reliability/support';

/**
 * Billing as the provider bills (issue 10): what a request is charged and counted however it
 * ends, against a stand-in OpenAI-compatible upstream whose reported usage the test controls.
 */

const MAX_OUTPUT = 1000;
/** $100 per million input tokens (100 µUSD a token), $1,000 per million output (1,000 µUSD a token). */
const CATALOG: CatalogFile = {
  models: {
    m: {
      owned_by: 'test',
      pricing: { input_per_mtok: 100, output_per_mtok: 1000 },
      context_window: 100_000,
      max_output_tokens: MAX_OUTPUT,
      routes: [{ provider: 'openai-compatible', base_url: 'http://placeholder/v1', model: 'up' }],
    },
  },
};

type Behaviour = (body: any, res: ServerResponse) => unknown;
let behaviour: Behaviour;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let gw: TestGateway;

const chunk = (delta: object, extra: object = {}) =>
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'up', choices: [{ index: 0, delta, logprobs: null, finish_reason: null }], ...extra })}\n\n`;

/** A provider that writes as many tokens as it is allowed, and reports them. */
const usesTheWholeLimit: Behaviour = (body, res) => void res
  .writeHead(200, { 'content-type': 'application/json' })
  .end(JSON.stringify(answerOf(body.max_tokens ?? body.max_completion_tokens ?? 4096)));

function answerOf(out: number) {
  return completionBody('up', 'x '.repeat(Math.min(out, 50)), { prompt_tokens: 20, completion_tokens: out, total_tokens: 20 + out });
}

beforeAll(async () => {
  await warmTokenizer();
  upstream = await startUpstream(async (_req, body, res) => {
    await behaviour(body, res);
  });
  CATALOG.models.m.routes[0].base_url = upstream.url;
  gw = await startTestGateway({ catalog: catalogOf(CATALOG), maxRequestMs: 1_500 });
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
});

const ask = (key: string, extra: object = {}) => postChat(gw, key, { model: 'm', messages: [{ role: 'user', content: 'tell me about tokens' }], ...extra });

describe('a client that goes away', () => {
  it('is charged the prompt when it aborts right after the headers, and the prompt stays in TPM', async () => {
    behaviour = (_body, res) => {
      // The provider has started (and billed the prompt), then takes its time.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk({ role: 'assistant', content: '' }));
    };
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    const res = await ask(acct.key, { stream: true, max_tokens: 50 });
    expect(res.status).toBe(200);
    await res.body!.cancel();
    for (let i = 0; i < 50 && (await gw.gateway.stores.holds.ofAccount(acct.accountId)).length; i++) await sleep(100);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(1);
    const [item] = b.requests;
    expect(item).toMatchObject({ status: 'aborted', completionTokens: 0, usageEstimated: true });
    expect(item.promptTokens).toBeGreaterThan(0);
    // The prompt at $100 per million: 100 µUSD a token.
    expect(item.amountMicroUsd).toBe(-item.promptTokens! * 100);
    const account = (await gw.gateway.stores.accounts.get(acct.accountId))!;
    expect(account.counts.tokens).toBe(item.promptTokens);
  });
});

describe('the longest request time (ITAPI_MAX_REQUEST_S)', () => {
  it('ends a stream that reaches it with an error event and [DONE], and settles what was delivered', async () => {
    behaviour = async (_body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk({ role: 'assistant', content: '' }));
      // A word every 200 ms, for ever.
      for (let i = 0; !res.destroyed && i < 100; i++) {
        res.write(chunk({ content: `word${i} ` }));
        await sleep(200);
      }
    };
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    const started = Date.now();
    const res = await ask(acct.key, { stream: true, max_tokens: 500 });
    const events = parseSse(await res.text());
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
    expect(elapsed).toBeLessThan(5_000);
    expect(events.at(-1)).toBe('[DONE]');
    const error = events.at(-2) as { error: { code: string; message: string } };
    expect(error.error).toMatchObject({ code: 'upstream_timeout' });
    expect(error.error.message).toMatch(/ITAPI_MAX_REQUEST_S/);
    const delivered = events.slice(0, -2).map((e: any) => e.choices[0]?.delta?.content ?? '').join('');
    expect(delivered).toMatch(/word0 word1 /);

    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    const [item] = b.requests;
    expect(item).toMatchObject({ status: 'interrupted', errorCode: 'upstream_timeout' });
    expect(item.completionTokens).toBeGreaterThan(0);
    expect(item.amountMicroUsd).toBeLessThan(-item.completionTokens! * 1000 + 1);
  });

  it('ends a JSON request that reaches it with a 504 and charges the prompt, which the provider worked on', async () => {
    behaviour = () => undefined; // never answers
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    const res = await ask(acct.key, { max_tokens: 10 });
    expect(res.status).toBe(504);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    const [item] = b.requests;
    expect(item).toMatchObject({ status: 'interrupted', errorCode: 'upstream_timeout', completionTokens: 0, usageEstimated: true });
    expect(item.promptTokens).toBeGreaterThan(0);
    expect(item.amountMicroUsd).toBe(-item.promptTokens! * 100);
  });
});

describe('tokens per minute, counted as OpenAI counts them', () => {
  it('keeps 20 requests without max_tokens within a small TPM', async () => {
    behaviour = usesTheWholeLimit;
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 2_500, creditsMicroUsd: 100_000_000 });
    const answers = [];
    for (let round = 0; round < 4; round++) {
      answers.push(...(await Promise.all(Array.from({ length: 5 }, () => ask(acct.key)))));
    }
    const bodies = await Promise.all(answers.map((r) => r.json()));
    const served = bodies.filter((b) => !b.error);
    const tokens = served.reduce((s, b) => s + b.usage.total_tokens, 0);
    // All within one minute: what was served fits the limit, and the rest was told why.
    expect(tokens).toBeLessThanOrEqual(2_500);
    expect(served.length).toBeGreaterThanOrEqual(2);
    expect(bodies.filter((b) => b.error)).not.toHaveLength(0);
    for (const b of bodies.filter((b) => b.error)) expect(b.error.code).toBe('rate_limit_exceeded');
    for (const body of upstream.requests.slice(-served.length)) expect(body.max_tokens).toBe(MAX_OUTPUT);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('lowers the output limit of a request that alone would exceed the limit, and lowers a client limit that does not fit the minute', async () => {
    behaviour = usesTheWholeLimit;
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 600, creditsMicroUsd: 100_000_000 });
    const res = await ask(acct.key);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.choices[0].finish_reason).toBe('stop');
    const sent = upstream.requests.at(-1);
    expect(sent.max_tokens).toBeLessThan(600);
    expect(sent.max_tokens).toBeGreaterThan(500);
    // The minute is used up: a client's own limit above what is left waits for the floor to free, told within a minute.
    const refused = await ask(acct.key, { max_tokens: 700 });
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.message).toMatch(/Rate limit reached for tokens of the account: limit 600 per minute/);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(Number(refused.headers.get('retry-after-ms'))).toBeLessThanOrEqual(60_000);
  });
});

describe('the hold is an upper bound', () => {
  it('clamps max_tokens above the model’s maximum, and always sends the held limit upstream', async () => {
    behaviour = usesTheWholeLimit;
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 100_000_000 });
    expect((await ask(acct.key, { max_tokens: 1_000_000 })).status).toBe(200);
    expect(upstream.requests.at(-1).max_tokens).toBe(MAX_OUTPUT);
    expect((await ask(acct.key, { max_completion_tokens: 5_000 })).status).toBe(200);
    // Not api.openai.com: the limit goes in the field every OpenAI-compatible server honours.
    expect(upstream.requests.at(-1)).toMatchObject({ max_tokens: MAX_OUTPUT });
    expect(upstream.requests.at(-1).max_completion_tokens).toBeUndefined();
    expect((await ask(acct.key)).status).toBe(200);
    expect(upstream.requests.at(-1).max_tokens).toBe(MAX_OUTPUT);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('charges a provider’s overrun as far as the balance goes and records the rest, never below zero', async () => {
    // A provider that ignores the limit: 3,000 output tokens on a limit of 10.
    behaviour = (_body, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody('up', 'long', { prompt_tokens: 20, completion_tokens: 3000, total_tokens: 3020 })));
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 50_000 });
    expect((await ask(acct.key, { max_tokens: 10 })).status).toBe(200);
    const b = await books(gw, acct.accountId);
    expect(b.balance).toBe(0);
    expect(b.balance).toBe(b.ledgerSum);
    const [item] = b.requests;
    expect(item.amountMicroUsd).toBe(-50_000);
    expect(item.unchargedMicroUsd).toBe(20 * 100 + 3000 * 1000 - 50_000);
    expect(gw.logs.some((l) => l.includes('settlement_overrun'))).toBe(true);
  });
});

describe('the balance as this instance last saw it', () => {
  it('never answers 402 from a stale view: a top-up made elsewhere is used at once', async () => {
    behaviour = usesTheWholeLimit;
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 1 });
    const poor = await ask(acct.key);
    expect(poor.status).toBe(402);
    // The operator tops up (another process: straight in the table).
    await gw.gateway.stores.accounts.topUp(acct.accountId, 10_000_000, 'invoice-1');
    const served = await ask(acct.key);
    expect(served.status).toBe(200);
    expect(upstream.requests.at(-1).max_tokens).toBe(MAX_OUTPUT);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('sends the same output limit request after request when the balance can pay it', async () => {
    behaviour = (_body, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody('up', 'short', { prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 })));
    // One and a half times the hold of a request at the model's maximum.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 1_500_000 });
    const limits = [];
    for (let i = 0; i < 6; i++) {
      expect((await ask(acct.key)).status).toBe(200);
      await gw.gateway.background.drain();
      limits.push(upstream.requests.at(-1).max_tokens);
    }
    expect(limits).toEqual(Array(6).fill(MAX_OUTPUT));
  });

  it('lowers the output limit to what the balance pays, from the account as it is', async () => {
    behaviour = usesTheWholeLimit;
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 300_000 });
    const res = await ask(acct.key);
    expect(res.status).toBe(200);
    const limit = upstream.requests.at(-1).max_tokens;
    expect(limit).toBeLessThan(300);
    expect(limit).toBeGreaterThan(290);
    expect((await res.json()).usage.completion_tokens).toBe(limit);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.balance).toBeGreaterThanOrEqual(0);
  });
});
