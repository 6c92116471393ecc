import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { chatPromptEstimate, warmTokenizer } from '../../lambda/money/tokens';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { completed, moneyOver } from '../support/money';
import { watchSocketWrites } from '../support/socket-writes';
import { cancellationMetrics, freshTables, recordingUpstream, speculationCatalog, uniqueTag, until, type RecordingUpstream } from '../support/speculation';
import { books, expectBooksBalance, expectErrorBody, parseSse, postChat, sleep } from '../reliability/support';

/**
 * Overlapped admission (issue 22): the first route's call starts while the admission write is in
 * flight when this instance's view says the request will be admitted; the client gets nothing
 * before admission; a refused or re-fitted speculative call is cut, counted, and never charged.
 * Admission writes are slowed by an interceptor on the gateway's own DynamoDB client, so the order
 * of events is structural, not a race of milliseconds.
 */

const MAX_OUTPUT = 4_000;
const CATALOG = speculationCatalog();

interface AdmissionWrite {
  startedAtMs: number;
  endedAtMs?: number;
}

let upstream: RecordingUpstream;
let gw: TestGateway;
const tables = freshTables('ov');
const admissionWrites: AdmissionWrite[] = [];
const cancellations: string[] = [];
/** How long each admission write waits before it is sent. */
let admissionDelayMs = 0;
/** How long each settlement write waits before it is sent, and when those slowed ended. */
let settlementDelayMs = 0;
const settlementsEndedAtMs: number[] = [];
/** While set, what happened first: the admission write's work began, or the upstream request was written to its socket. */
let wireOrder: Array<'admission' | 'upstream' | 'count'> | undefined;
/** The admission writes' inputs as JSON, while set. */
let admissionInputs: string[] | undefined;

/** Called with each text the tokenizer counts (test/support/observed-tokenizer.cjs, loaded below). */
const counted = globalThis as { __itapiCounted?: (text: string) => void };

beforeAll(async () => {
  // The real o200k_base, through a module that tells when the gateway counts a prompt.
  process.env.ITAPI_TOKENIZER_MODULE = join(__dirname, '../support/observed-tokenizer.cjs');
  await warmTokenizer();
  upstream = await recordingUpstream();
  CATALOG.models.m.routes[0].base_url = upstream.url;
  gw = await startTestGateway({ catalog: catalogOf(CATALOG), seedDemo: false, metrics: cancellationMetrics(cancellations), tables });
  gw.dynamo.intercept(async (operation, input, next) => {
    // An admission puts a hold item (a settlement deletes one).
    const text = operation === 'TransactWriteItems' ? JSON.stringify(input) : '';
    if (text.includes(tables.holds) && text.includes('"Delete"') && settlementDelayMs) {
      // A settlement (it deletes a hold), slowed while set.
      await sleep(settlementDelayMs);
      try {
        return await next();
      } finally {
        settlementsEndedAtMs.push(Date.now());
      }
    }
    if (!text.includes(tables.holds) || text.includes('"Delete"')) return next();
    const write: AdmissionWrite = { startedAtMs: Date.now() };
    admissionWrites.push(write);
    admissionInputs?.push(text);
    wireOrder?.push('admission');
    if (admissionDelayMs) await sleep(admissionDelayMs);
    try {
      return await next();
    } finally {
      write.endedAtMs = Date.now();
    }
  });
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
});

beforeEach(() => {
  admissionDelayMs = 0;
  settlementDelayMs = 0;
  settlementsEndedAtMs.length = 0;
  upstream.answerAfterMs = 0;
  upstream.usageFor.clear();
  cancellations.length = 0;
  admissionWrites.length = 0;
});

const ask = (key: string, tag: string, extra: object = {}, init: RequestInit = {}) =>
  postChat(gw, key, { model: 'm', messages: [{ role: 'user', content: tag }], ...extra }, init);
const arrivalsOf = (tag: string) => upstream.arrivalsOf(tag);

/**
 * This instance reads the account (a request refused before admission tells the limits as they
 * are): its view is then read and recent, as it is for an account in use.
 */
async function seeAccount(acct: TestAccount): Promise<void> {
  const res = await ask(acct.key, 'bad', { temperature: 5 });
  expect(res.status).toBe(400);
  await res.text();
}

/** Another gateway instance over the same tables: its admissions are not in this instance's view. */
function otherInstance() {
  return moneyOver(gw.gateway.stores, tables);
}

/** A JSON request of model `m` admitted by another instance (unseen here): its run, to settle later. */
function admitElsewhere(acct: TestAccount, promptTokens: number, outputLimit: number) {
  return otherInstance().admission.admit({
    requestId: `req_other_${randomBytes(4).toString('hex')}`,
    key: acct.record,
    model: gw.catalog.get('m')!,
    startedAtMs: Date.now(),
    promptTokens,
    outputLimit,
    n: 1,
    stream: false,
  });
}

describe('an account that cannot pay', () => {
  it('never gets its prompt sent upstream when this instance has seen that it cannot pay', async () => {
    // max_tokens 100 holds 10 prompt tokens × 100 + 100 × 1,000 µUSD ≈ 101,000 µUSD.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 50_000 });
    const tag = uniqueTag();
    // The first from a cold view, the rest from the view the refusals brought back.
    for (let i = 0; i < 4; i++) {
      const res = await ask(acct.key, tag, { max_tokens: 100 });
      expect(res.status).toBe(402);
      expectErrorBody(await res.json(), 'insufficient_quota', 'insufficient_quota');
    }
    expect(arrivalsOf(tag)).toHaveLength(0);
    expect(cancellations).toEqual([]);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(0);
    expect(b.balance).toBe(50_000);
  });

  it('waits for admission before calling when the balance pays the hold but not four of them', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 250_000 });
    await seeAccount(acct);
    admissionDelayMs = 200;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { max_tokens: 100 });
    expect(res.status).toBe(200);
    await res.json();
    const [arrival] = arrivalsOf(tag);
    expect(arrival.arrivedAtMs).toBeGreaterThanOrEqual(admissionWrites.at(-1)!.endedAtMs!);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('cuts a speculative call that another instance drained the balance under, charges nothing, and counts it', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 1_000_000 });
    await seeAccount(acct);
    // Another instance holds 10 × 100 + 950 × 1,000 µUSD: 49,000 µUSD left, less than this request's hold.
    const drain = await admitElsewhere(acct, 10, 950);
    admissionDelayMs = 1_000;
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { max_tokens: 100 });
    expect(res.status).toBe(402);
    expectErrorBody(await res.json(), 'insufficient_quota', 'insufficient_quota');
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    // The call went out while the admission write was in flight, and was cut before it answered.
    expect(arrival.arrivedAtMs).toBeLessThan(admissionWrites.at(-1)!.endedAtMs!);
    await until(() => arrival.closedUnanswered, 'the speculative call to be cut');
    expect(arrival.answeredAtMs).toBeUndefined();
    expect(cancellations).toEqual(['refused']);
    expect(gw.logs.filter((l) => l.includes('"speculation_cancelled"') && l.includes('"reason":"refused"'))).toHaveLength(1);
    // The refusal brought the account back as it is: the next request is refused before any call.
    const again = await ask(acct.key, tag, { max_tokens: 100 });
    expect(again.status).toBe(402);
    await again.json();
    expect(arrivalsOf(tag)).toHaveLength(1);
    expect(cancellations).toEqual(['refused']);

    await drain.settle(completed({ prompt_tokens: 10, completion_tokens: 950, total_tokens: 960 }));
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    // Only the other instance's request is on the ledger: 10 × 100 + 950 × 1,000.
    expect(b.requests.map((r) => r.amountMicroUsd)).toEqual([-951_000]);
    expect(b.balance).toBe(49_000);
  });
});

describe('an admitted speculative request', () => {
  it('is sent upstream before the admission write has finished, and nothing reaches the client before it has (JSON)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    await seeAccount(acct);
    admissionDelayMs = 1_000;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { max_tokens: 100 });
    const headersAtMs = Date.now();
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.choices[0].message.content).toBe('hello there');
    const write = admissionWrites.at(-1)!;
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    expect(arrival.maxTokens).toBe(100);
    expect(arrival.arrivedAtMs).toBeLessThan(write.endedAtMs!);
    // The upstream answered while admission was still in flight; the client had nothing until it ended.
    expect(arrival.answeredAtMs!).toBeLessThan(write.endedAtMs!);
    expect(headersAtMs).toBeGreaterThanOrEqual(write.endedAtMs!);
    expect(cancellations).toEqual([]);

    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(1);
    expect(b.requests[0]).toMatchObject({ status: 'completed', promptTokens: 10, completionTokens: 5 });
    expect(b.requests[0].amountMicroUsd).toBe(-(10 * 100 + 5 * 1000));
  });

  it('speculates while this instance still settles the account\'s last request (a client\'s next turn at once): the call goes out first, admission waits for the settlement, the books balance', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    await seeAccount(acct);
    settlementDelayMs = 600;
    const first = await ask(acct.key, uniqueTag(), { max_tokens: 100 });
    expect(first.status).toBe(200);
    await first.json();
    // The first request's settlement is under way (slowed) when the next turn comes.
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { max_tokens: 100 });
    expect(res.status).toBe(200);
    expect((await res.json()).choices[0].message.content).toBe('hello there');
    await until(() => settlementsEndedAtMs.length >= 2, 'both settlements');
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    // Sent upstream before the first request's settlement (slowed 600 ms) had landed.
    expect(arrival.arrivedAtMs).toBeLessThan(settlementsEndedAtMs[0]);
    // Its admission was written only once that settlement had landed (it sees the true counts).
    expect(admissionWrites.at(-1)!.startedAtMs).toBeGreaterThanOrEqual(settlementsEndedAtMs[0]);
    expect(cancellations).toEqual([]);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests.map((r) => r.status)).toEqual(['completed', 'completed']);
  });

  it('sends a prompt upstream once, and cuts it, when the settlement under way went past its hold and drained the balance (a provider past its limit)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    await seeAccount(acct);
    settlementDelayMs = 400;
    // The provider reports 20,000 output tokens for a call sent with max_tokens 100: $20 against a $10 balance.
    const over = uniqueTag();
    upstream.usageFor.set(over, { prompt_tokens: 10, completion_tokens: 20_000, total_tokens: 20_010 });
    const first = await ask(acct.key, over, { max_tokens: 100 });
    expect(first.status).toBe(200);
    await first.json();
    // While that settlement is under way the view still shows $10 less one hold: the next turn speculates.
    const second = uniqueTag();
    const res = await ask(acct.key, second, { max_tokens: 100 });
    expect(res.status).toBe(402);
    await res.text();
    expect(arrivalsOf(second)).toHaveLength(1);
    // Before the overrun settlement's first attempt (its balance condition fails; it is then charged as far as the balance goes) ended.
    expect(arrivalsOf(second)[0].arrivedAtMs).toBeLessThan(settlementsEndedAtMs[0]);
    expect(cancellations).toEqual(['refused']);
    // The refusal brought the drained item back: the next request is refused before any call.
    const third = uniqueTag();
    const again = await ask(acct.key, third, { max_tokens: 100 });
    expect(again.status).toBe(402);
    await again.text();
    expect(arrivalsOf(third)).toHaveLength(0);
    expect(cancellations).toEqual(['refused']);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.balance).toBe(0);
    expect(b.requests).toHaveLength(1);
  });

  it('speculates on a view last brought up to date 7 s ago when the balance shows the margins scaled by its age, and waits when it does not', async () => {
    // max_tokens 100: a hold of about 101,000 µUSD; at 7 s, 4 × 1.4 = 5.6 holds are needed.
    const rich = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    const thin = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 500_000 });
    for (const acct of [rich, thin]) {
      await seeAccount(acct);
      const res = await ask(acct.key, uniqueTag(), { max_tokens: 100 });
      expect(res.status).toBe(200);
      await res.json();
    }
    await gw.gateway.background.drain();
    await sleep(7_000);
    admissionDelayMs = 1_000;
    const tag = uniqueTag();
    const res = await ask(rich.key, tag, { max_tokens: 100 });
    expect(res.status).toBe(200);
    await res.json();
    const [arrival] = arrivalsOf(tag);
    expect(arrival.arrivedAtMs).toBeLessThan(admissionWrites.at(-1)!.endedAtMs!);

    const thinTag = uniqueTag();
    const thinRes = await ask(thin.key, thinTag, { max_tokens: 100 });
    expect(thinRes.status).toBe(200);
    await thinRes.json();
    const [thinArrival] = arrivalsOf(thinTag);
    expect(thinArrival.arrivedAtMs).toBeGreaterThanOrEqual(admissionWrites.at(-1)!.endedAtMs!);
    expect(cancellations).toEqual([]);
    for (const acct of [rich, thin]) expectBooksBalance(await books(gw, acct.accountId));
  }, 30_000);

  it('holds a stream’s first event until admission has succeeded, then relays the whole stream and settles once', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    await seeAccount(acct);
    admissionDelayMs = 1_000;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag, { max_tokens: 100, stream: true, stream_options: { include_usage: true } });
    const headersAtMs = Date.now();
    expect(res.status).toBe(200);
    const events = parseSse(await res.text());
    const write = admissionWrites.at(-1)!;
    const [arrival] = arrivalsOf(tag);
    expect(arrival.answeredAtMs!).toBeLessThan(write.endedAtMs!);
    expect(headersAtMs).toBeGreaterThanOrEqual(write.endedAtMs!);
    expect(events.at(-1)).toBe('[DONE]');
    const text = events.slice(0, -1).map((e: any) => e.choices?.[0]?.delta?.content ?? '').join('');
    expect(text).toBe('one two three four five');

    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(1);
    expect(b.requests[0]).toMatchObject({ status: 'completed', completionTokens: 5 });
  });

  it('sends the admitted body again when admission fitted another output limit, and counts the cut call', async () => {
    // 20,000 tokens a minute; the request asks for the model's maximum (4,000): within half of the minute as this instance sees it.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 20_000, creditsMicroUsd: 100_000_000 });
    await seeAccount(acct);
    // Another instance counts 17,000 tokens: the write fails, and the refit gives half of what is left.
    const taken = await admitElsewhere(acct, 16_000, 1_000);
    admissionDelayMs = 1_000;
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const res = await ask(acct.key, tag);
    expect(res.status).toBe(200);
    const limit = Number(res.headers.get('x-itapi-output-limit'));
    await res.json();
    expect(limit).toBeLessThan(MAX_OUTPUT);
    const [speculative, admitted, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    expect(speculative.maxTokens).toBe(MAX_OUTPUT);
    expect(speculative.closedUnanswered).toBe(true);
    expect(admitted.maxTokens).toBe(limit);
    expect(cancellations).toEqual(['limit_changed']);

    await taken.settle(completed({ prompt_tokens: 16_000, completion_tokens: 1_000, total_tokens: 17_000 }));
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(2);
  });

  it('cuts the speculative call when the client leaves during admission, and gives the hold back whole', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    await seeAccount(acct);
    admissionDelayMs = 1_500;
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const client = new AbortController();
    const asked = ask(acct.key, tag, { max_tokens: 100 }, { signal: client.signal }).catch((err: Error) => err);
    await until(() => arrivalsOf(tag).length === 1, 'the speculative call');
    client.abort();
    expect(await asked).toMatchObject({ name: 'AbortError' });
    const [arrival] = arrivalsOf(tag);
    await until(() => arrival.closedUnanswered, 'the speculative call to be cut');
    await until(() => cancellations.length === 1, 'the cancellation');
    expect(cancellations).toEqual(['client_closed']);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.balance).toBe(10_000_000);
    for (const r of b.requests) expect(r.amountMicroUsd).toBe(0);
  });
});

describe('200 concurrent requests on one account near its request limit', () => {
  it('admits none beyond the limit, counts every refused speculative call, and charges only what was answered', async () => {
    // Not across a minute boundary: the sliding window then lets the next minute's share in too.
    const toBoundaryMs = 60_000 - (Date.now() % 60_000);
    if (toBoundaryMs < 20_000) await sleep(toBoundaryMs + 100);
    const rpm = 100;
    const acct = await createAccount(gw, { tier: 'enterprise', rpm, tpm: 10_000_000, creditsMicroUsd: 100_000_000 });
    await seeAccount(acct);
    // Other instances have counted 90 of the minute's 100 requests (their answers settled): this instance's view still says none.
    await gw.dynamo.call('UpdateItem', {
      TableName: tables.accounts,
      Key: { account_id: { S: acct.accountId } },
      UpdateExpression: 'SET win = :win, req = :req, tok = :tok, preq = :zero, ptok = :zero',
      ExpressionAttributeValues: { ':win': { N: String(Math.floor(Date.now() / 60_000)) }, ':req': { N: '90' }, ':tok': { N: '5400' }, ':zero': { N: '0' } },
    });
    const calls = upstream.arrivals.length;
    // Slow admission writes: the whole burst is in before the first of them answers and corrects the view.
    admissionDelayMs = 1_000;
    const tag = uniqueTag();
    const answers = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await ask(acct.key, tag, { max_tokens: 50 });
        await res.text();
        return res.status;
      }),
    );
    const ok = answers.filter((s) => s === 200).length;
    const limited = answers.filter((s) => s === 429).length;
    expect(ok + limited).toBe(200);
    expect(ok).toBeLessThanOrEqual(rpm - 90);
    expect(ok).toBeGreaterThan(0);
    await gw.gateway.background.drain();
    // Every speculative call that admission refused is counted, and only those.
    const refused = cancellations.filter((r) => r === 'refused').length;
    expect(cancellations.filter((r) => r !== 'refused')).toEqual([]);
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThanOrEqual(limited);
    // What reached the stand-in: the admitted requests' calls and refused speculative calls, nothing else.
    await sleep(200);
    const reached = upstream.arrivals.length - calls;
    expect(reached).toBeGreaterThanOrEqual(ok);
    expect(reached).toBeLessThanOrEqual(ok + refused);

    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(ok);
    for (const r of b.requests) expect(r).toMatchObject({ status: 'completed', amountMicroUsd: -(10 * 100 + 5 * 1000) });
    const account = (await gw.gateway.stores.accounts.get(acct.accountId))!;
    expect(account.counts.requests + account.counts.prevRequests).toBe(ok + 90);
  }, 60_000);
});

describe('review-2: concurrent requests of one instance', () => {
  it('does not speculate past what this instance already has in flight: a burst beyond the balance sends no refused prompt upstream', async () => {
    // max_tokens 100 holds 10 × 100 + 100 × 1,000 = 101,000 µUSD; the balance pays four of them, the rule's margin for one.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 410_000 });
    await seeAccount(acct);
    admissionDelayMs = 500;
    // Nothing settles (and refunds) while the burst is admitted.
    upstream.answerAfterMs = 3_000;
    const tag = uniqueTag();
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await ask(acct.key, tag, { max_tokens: 100 });
        await res.text();
        return res.status;
      }),
    );
    const ok = answers.filter((s) => s === 200).length;
    expect(ok).toBeLessThanOrEqual(4);
    await gw.gateway.background.drain();
    await sleep(200);
    // Every answered prompt is an admitted request's. The rule's margin lets one call go early; it
    // can still lose the admission race to requests that waited (their writes land first), and is
    // then cut and counted. Without the in-flight view all eight went early and four were cut.
    const arrivals = arrivalsOf(tag);
    const cut = arrivals.filter((a) => a.closedUnanswered);
    expect(arrivals.length - cut.length).toBe(ok);
    expect(cut.length).toBeLessThanOrEqual(1);
    expect(cancellations).toHaveLength(cut.length);
    expectBooksBalance(await books(gw, acct.accountId));
  }, 30_000);
});

describe('review-2: the client leaving while admission re-fits the limit', () => {
  it('makes no second call for a client that is gone, and charges nothing', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 20_000, creditsMicroUsd: 100_000_000 });
    await seeAccount(acct);
    const taken = await admitElsewhere(acct, 16_000, 1_000);
    admissionDelayMs = 1_500;
    upstream.answerAfterMs = 1_000;
    const tag = uniqueTag();
    const client = new AbortController();
    const asked = ask(acct.key, tag, {}, { signal: client.signal }).catch((err: Error) => err);
    await until(() => arrivalsOf(tag).length === 1, 'the speculative call');
    client.abort();
    expect(await asked).toMatchObject({ name: 'AbortError' });
    // Two admission writes (the first fails and brings the item back; the re-fitted one lands), then time for a second call to arrive.
    await sleep(5_000);
    await gw.gateway.background.drain();
    expect(arrivalsOf(tag)).toHaveLength(1);
    expect(cancellations).toEqual(['client_closed']);
    await taken.settle(completed({ prompt_tokens: 16_000, completion_tokens: 1_000, total_tokens: 17_000 }));
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    // Only the other instance's request is charged.
    expect(b.requests.filter((r) => r.amountMicroUsd !== 0)).toHaveLength(1);
  }, 30_000);
});

describe('the speculative call goes out first', () => {
  it('writes the upstream request to its socket before the admission write\'s work begins (that work, run first, delayed it about 1 ms)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 100_000_000 });
    await seeAccount(acct);
    const tag = uniqueTag();
    // The socket writes of this process: the one carrying the prompt to the route's model is the upstream request (the client's names `m`).
    const stop = watchSocketWrites((written) => {
      if (written.includes(tag) && written.includes('"model":"up"')) wireOrder?.push('upstream');
    });
    // A kept-alive connection to the stand-in first, as an instance in use has (a new one waits for its connect).
    const warm = await ask(acct.key, tag, { max_tokens: 100 });
    expect(warm.status).toBe(200);
    await warm.text();
    // Speculation waits for no settlement of the account under way (the rule): each request's has landed before the next.
    await gw.gateway.background.drain();
    wireOrder = [];
    try {
      for (const stream of [false, true]) {
        wireOrder.length = 0;
        const res = await ask(acct.key, tag, { max_tokens: 100, ...(stream && { stream: true }) });
        expect(res.status).toBe(200);
        await res.text();
        // Speculated (the call made before admission), and on the wire before the write's work.
        expect({ stream, order: wireOrder.slice(0, 2) }).toEqual({ stream, order: ['upstream', 'admission'] });
        await gw.gateway.background.drain();
      }
    } finally {
      wireOrder = undefined;
      stop();
    }
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });
});

describe('Messages (Anthropic\'s wire): the same overlap', () => {
  const askMessages = (key: string, tag: string, extra: object = {}) =>
    fetch(`${gw.baseUrl}/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 100, messages: [{ role: 'user', content: tag }], ...extra }),
    });

  it('is sent upstream before the admission write has finished, and nothing reaches the client before it has (stream)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 10_000_000 });
    await seeAccount(acct);
    admissionDelayMs = 1_000;
    const tag = uniqueTag();
    const res = await askMessages(acct.key, tag, { stream: true });
    const headersAtMs = Date.now();
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('event: message_stop');
    const write = admissionWrites.at(-1)!;
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    expect(arrival.maxTokens).toBe(100);
    expect(arrival.answeredAtMs!).toBeLessThan(write.endedAtMs!);
    expect(headersAtMs).toBeGreaterThanOrEqual(write.endedAtMs!);
    expect(cancellations).toEqual([]);
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(1);
    expect(b.requests[0]).toMatchObject({ status: 'completed', completionTokens: 5 });
  });

  it('cuts a speculative call that another instance drained the balance under, answers Anthropic\'s 402-class error, charges nothing, and counts it', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 1_000_000 });
    await seeAccount(acct);
    const drain = await admitElsewhere(acct, 10, 950);
    admissionDelayMs = 1_000;
    upstream.answerAfterMs = 5_000;
    const tag = uniqueTag();
    const res = await askMessages(acct.key, tag);
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: expect.any(String) } });
    const [arrival, ...more] = arrivalsOf(tag);
    expect(more).toHaveLength(0);
    expect(arrival.arrivedAtMs).toBeLessThan(admissionWrites.at(-1)!.endedAtMs!);
    await until(() => arrival.closedUnanswered, 'the speculative call to be cut');
    expect(cancellations).toEqual(['refused']);
    await drain.settle(completed({ prompt_tokens: 10, completion_tokens: 950, total_tokens: 960 }));
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests.map((r) => r.amountMicroUsd)).toEqual([-951_000]);
    expect(b.balance).toBe(49_000);
  });
});

describe('a long prompt', () => {
  /** About 60,000 characters of prose after the tag: the tokenizer's count takes milliseconds (about 15,000 tokens, 60,000 bytes). */
  const longPrompt = (tag: string) => `${tag} ${'The quick brown fox jumps over the lazy dog, and the books balance. '.repeat(900)}`;

  /** What happened first for one request: its upstream request on the wire, its prompt counted, its admission write; and the hold it wrote. */
  /** The same prompt on each completion endpoint (the stand-in speaks Chat; Messages and Responses reach it through the canonical call). */
  const send = (endpoint: 'chat' | 'messages' | 'responses', key: string, content: string, stream: boolean) => {
    if (endpoint === 'chat') return postChat(gw, key, { model: 'm', messages: [{ role: 'user', content }], max_tokens: 100, ...(stream && { stream: true }) });
    const [path, headers, body] =
      endpoint === 'messages'
        ? ['messages', { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, { model: 'm', max_tokens: 100, messages: [{ role: 'user', content }] }]
        : ['responses', { authorization: `Bearer ${key}` }, { model: 'm', max_output_tokens: 100, input: content }];
    return fetch(`${gw.baseUrl}/${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ ...body, ...(stream && { stream: true }) }) });
  };

  async function orderFor(
    acct: TestAccount,
    stream: boolean,
    endpoint: 'chat' | 'messages' | 'responses' = 'chat',
  ): Promise<{ order: string[]; holdPromptTokens: number | undefined; expected: number }> {
    const tag = uniqueTag();
    const content = longPrompt(tag);
    const order: Array<'admission' | 'upstream' | 'count'> = (wireOrder = []);
    admissionInputs = [];
    counted.__itapiCounted = (text) => {
      if (text.includes(tag)) order.push('count');
    };
    const stop = watchSocketWrites((written) => {
      if (written.includes(tag) && written.includes('"model":"up"')) order.push('upstream');
    });
    try {
      const res = await send(endpoint, acct.key, content, stream);
      expect(res.status).toBe(200);
      await res.text();
      await gw.gateway.background.drain();
      const seen = [...order];
      const hold = admissionInputs.map((text) => /"prompt_tokens":\{"N":"(\d+)"\}/.exec(text)).find(Boolean);
      const expected = chatPromptEstimate({ messages: [{ role: 'user', content }] }).tokens();
      return { order: seen, holdPromptTokens: hold ? Number(hold[1]) : undefined, expected };
    } finally {
      stop();
      wireOrder = undefined;
      admissionInputs = undefined;
      counted.__itapiCounted = undefined;
    }
  }

  /** An account this instance has seen, with a kept-alive connection to the stand-in, as an instance in use has. */
  async function accountInUse(): Promise<TestAccount> {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 1_000_000_000 });
    await seeAccount(acct);
    const warm = await ask(acct.key, uniqueTag(), { max_tokens: 100 });
    await warm.text();
    await gw.gateway.background.drain();
    return acct;
  }

  it('is counted by the tokenizer only once its speculative call is on the wire, and admitted for the count, not the bound', async () => {
    const acct = await accountInUse();
    for (const stream of [false, true]) {
      const { order, holdPromptTokens, expected } = await orderFor(acct, stream);
      expect({ stream, order: order.slice(0, 3) }).toEqual({ stream, order: ['upstream', 'count', 'admission'] });
      // The hold is the tokenizer's estimate (about a quarter of the prompt's bytes), not the bound it went upstream on.
      expect(holdPromptTokens).toBe(expected);
      expect(expected).toBeLessThan(60_000 / 2);
    }
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('is counted behind its speculative call on Messages and Responses too (Claude Code\'s and Codex\'s endpoints)', async () => {
    const acct = await accountInUse();
    for (const endpoint of ['messages', 'responses'] as const) {
      for (const stream of [false, true]) {
        const { order, holdPromptTokens } = await orderFor(acct, stream, endpoint);
        expect({ endpoint, stream, order: order.slice(0, 3) }).toEqual({ endpoint, stream, order: ['upstream', 'count', 'admission'] });
        // Held at the count (each endpoint's own estimate, about 15,000), not at the 60,000-byte bound.
        expect(holdPromptTokens).toBeGreaterThan(10_000);
        expect(holdPromptTokens).toBeLessThan(30_000);
      }
    }
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('is counted in flight at its count once counted, so the next long prompt speculates on what it really holds', async () => {
    // Two long prompts of one account, the second sent while the first's admission write waits:
    // the balance pays four of the second's holds at its bound only if the first is in flight at its count.
    const [first, second] = [longPrompt(uniqueTag()), longPrompt(uniqueTag())];
    const hold = (tokens: number) => tokens * 100 + 100 * 1_000;
    const [e1, e2] = [first, second].map((content) => chatPromptEstimate({ messages: [{ role: 'user', content }] }));
    const balance = Math.max(4 * hold(e1.bound), 4 * hold(e2.bound) + hold(e1.tokens()) + 10_000);
    expect(balance - hold(e1.bound)).toBeLessThan(4 * hold(e2.bound));
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 100_000_000, creditsMicroUsd: balance });
    await seeAccount(acct);
    const order: string[] = [];
    counted.__itapiCounted = (text) => {
      if (text.includes(second.slice(0, 20))) order.push('count');
    };
    const stop = watchSocketWrites((written) => {
      if (written.includes(second.slice(0, 20)) && written.includes('"model":"up"')) order.push('upstream');
    });
    try {
      admissionDelayMs = 1_000;
      const firstAnswer = postChat(gw, acct.key, { model: 'm', messages: [{ role: 'user', content: first }], max_tokens: 100 });
      // The first's write has begun: it was counted, and is in flight at its count.
      await until(() => admissionWrites.length === 1, "the first request's admission write");
      admissionDelayMs = 0;
      const res = await postChat(gw, acct.key, { model: 'm', messages: [{ role: 'user', content: second }], max_tokens: 100 });
      expect(res.status).toBe(200);
      await res.text();
      // Speculated on its bound (counted behind its call), not counted first for a margin the first's bound took.
      expect(order.slice(0, 2)).toEqual(['upstream', 'count']);
      expect((await firstAnswer).status).toBe(200);
    } finally {
      stop();
      counted.__itapiCounted = undefined;
    }
    await gw.gateway.background.drain();
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('with special-token text in it (<|endoftext|>) is counted behind its call as text, and answered', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 1_000_000_000 });
    await seeAccount(acct);
    const tag = uniqueTag();
    const res = await postChat(gw, acct.key, { model: 'm', messages: [{ role: 'user', content: `${longPrompt(tag)} <|endoftext|> <|im_start|>system` }], max_tokens: 100, stream: true });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('data: [DONE]');
    expect(upstream.arrivals.filter((a) => a.tag.startsWith(tag))).toHaveLength(1);
    await gw.gateway.background.drain();
    expect(cancellations).toEqual([]);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('is counted before anything else when the request waits for admission (no view of the account yet)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 1_000_000_000 });
    const { order, holdPromptTokens, expected } = await orderFor(acct, true);
    // A first admission on an account never read may take two writes (the account is read back in between): the call comes after them.
    expect(order[0]).toBe('count');
    expect(order.at(-1)).toBe('upstream');
    expect(order.filter((o) => o === 'upstream')).toHaveLength(1);
    expect(order).toContain('admission');
    expect(holdPromptTokens).toBe(expected);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('is counted first, and still speculated, when only its bound breaks the rule', async () => {
    // 60,000 bytes: a bound of about 60,000 tokens is over half of this minute's 100,000 tokens, the count (about 15,000) is not.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 100_000, creditsMicroUsd: 1_000_000_000 });
    await seeAccount(acct);
    const { order, holdPromptTokens, expected } = await orderFor(acct, true);
    expect(order.slice(0, 3)).toEqual(['count', 'upstream', 'admission']);
    expect(holdPromptTokens).toBe(expected);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('is not speculated when its count breaks the rule too, and is then admitted as before', async () => {
    // The count (about 15,000 tokens) and the output limit of 100 are over half of a 25,000-token minute.
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 25_000, creditsMicroUsd: 1_000_000_000 });
    await seeAccount(acct);
    const { order, holdPromptTokens, expected } = await orderFor(acct, true);
    expect(order.slice(0, 3)).toEqual(['count', 'admission', 'upstream']);
    expect(holdPromptTokens).toBe(expected);
    expectBooksBalance(await books(gw, acct.accountId));
  });
});
