import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import OpenAI from 'openai';
import type { CatalogFile } from '../../lambda/catalog';
import { countTokens, warmTokenizer } from '../../lambda/money/tokens';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { startUpstream } from '../support/upstream';
import { defaultProviders } from '../../lambda/providers';
import { eventStreamReply, route as bedrockRoute, testBedrockProvider } from '../providers/bedrock/stand-in';
import type { BedrockEvent } from '../providers/bedrock/transcripts';
import { StandIn } from '../providers/stand-in';
import { books, expectBooksBalance, parseSse, postChat, sleep } from '../reliability/support';

/**
 * Delivered output is charged however the request ends (issue 17, item 5): reasoning deltas, a
 * thinking summary, a client that stops reading while its socket stays open, the deadline.
 */

/** $1 per million input tokens (1 µUSD a token), $10 per million output (10 µUSD a token). */
const INPUT_MICRO_USD = 1;
const OUTPUT_MICRO_USD = 10;
const MAX_REQUEST_MS = 5_000;
const CATALOG: CatalogFile = {
  models: {
    m: {
      owned_by: 'test',
      pricing: { input_per_mtok: INPUT_MICRO_USD, output_per_mtok: OUTPUT_MICRO_USD },
      context_window: 400_000,
      max_output_tokens: 200_000,
      routes: [{ provider: 'openai-compatible', base_url: 'http://placeholder/v1', model: 'up' }],
    },
    claude: {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: INPUT_MICRO_USD, output_per_mtok: OUTPUT_MICRO_USD },
      context_window: 200_000,
      max_output_tokens: 64_000,
      routes: [{ provider: 'anthropic', base_url: 'http://placeholder', model: 'claude-sonnet-4-5' }],
    },
  },
};

type Behaviour = (req: IncomingMessage, body: any, res: ServerResponse) => unknown;
let behaviour: Behaviour;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let gw: TestGateway;

const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'up' };
const chunk = (delta: object) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: null }] })}\n\n`;
const usageChunk = (prompt: number, completion: number) =>
  `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } })}\n\n`;
const anthropicEvent = (type: string, doc: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...doc })}\n\n`;

beforeAll(async () => {
  await warmTokenizer();
  upstream = await startUpstream(async (req, body, res) => {
    await behaviour(req, body, res);
  });
  CATALOG.models.m.routes[0].base_url = upstream.url;
  CATALOG.models.claude.routes[0].base_url = upstream.url.replace(/\/v1$/, '');
  gw = await startTestGateway({ catalog: catalogOf(CATALOG), maxRequestMs: MAX_REQUEST_MS, maxBufferedEvents: 200_000 });
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
});

async function settledRequest(accountId: string, withinMs: number) {
  for (const until = Date.now() + withinMs; Date.now() < until; await sleep(50)) {
    const items = (await gw.gateway.stores.usage.all(accountId)).filter((i) => i.kind === 'request');
    if (items.length) return items[0];
  }
  throw new Error('no ledger item was written');
}

it('charges DeepSeek-style reasoning_content deltas delivered before the client aborts', async () => {
  const reasoning = Array.from({ length: 40 }, (_, i) => `step ${i} of careful thought. `);
  behaviour = (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk({ role: 'assistant', content: '', reasoning_content: '' }));
    for (const piece of reasoning) res.write(chunk({ reasoning_content: piece }));
    // Still thinking: the client gives up before any content comes.
  };
  const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
  const res = await postChat(gw, acct.key, { model: 'm', messages: [{ role: 'user', content: 'think hard' }], stream: true, max_tokens: 5000 });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('step 39 of')) text += new TextDecoder().decode((await reader.read()).value);
  await reader.cancel();
  await settledRequest(acct.accountId, 5_000);
  const delivered = parseSse(text)
    .map((e: any) => e.choices?.[0]?.delta?.reasoning_content ?? '')
    .join('');
  expect(delivered).toBe(reasoning.join(''));

  const b = await books(gw, acct.accountId);
  expectBooksBalance(b);
  const [item] = b.requests;
  expect(item).toMatchObject({ status: 'aborted', completionTokens: countTokens(delivered), usageEstimated: true });
  expect(item.completionTokens).toBeGreaterThan(100);
  expect(item.amountMicroUsd).toBe(-(item.promptTokens! * INPUT_MICRO_USD + item.completionTokens! * OUTPUT_MICRO_USD));
});

it('settles at the deadline, charging what the upstream sent, while a client that stopped reading keeps its socket open', async () => {
  // About 4.5 MB (of spaces, which tokenize small): more than the sockets between the gateway and the client hold.
  const EVENTS = 1_500;
  const PIECE = ' '.repeat(3_000);
  const REPORTED = { prompt: 30, completion: 100_000 };
  behaviour = (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk({ role: 'assistant', content: '' }));
    const lines: string[] = [];
    for (let i = 0; i < EVENTS; i++) lines.push(chunk({ content: PIECE }));
    res.write(lines.join(''));
    res.write(chunk({}).replace('"finish_reason":null', '"finish_reason":"stop"'));
    res.end(`${usageChunk(REPORTED.prompt, REPORTED.completion)}data: [DONE]\n\n`);
  };
  const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
  const url = new URL(`${gw.baseUrl}/chat/completions`);
  const startedAt = Date.now();
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' } }, resolve);
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a long answer' }], stream: true, max_tokens: 150_000 }));
  });
  if (response.statusCode !== 200) throw new Error(`${response.statusCode}: ${await new Promise((r) => { let t = ''; response.on('data', (d) => (t += d)); response.on('end', () => r(t)); })}`);
  const received: Buffer[] = [];
  let resumed = false;
  await new Promise<void>((resolve) => {
    response.on('data', (d: Buffer) => {
      received.push(d);
      // The client stops reading after its first bytes; its socket stays open.
      if (!resumed) response.pause();
      resolve();
    });
  });

  const item = await settledRequest(acct.accountId, MAX_REQUEST_MS + 5_000);
  // Settled by the request's own timer, not by the client's next read, which has not happened.
  expect(Date.now() - startedAt).toBeGreaterThanOrEqual(MAX_REQUEST_MS - 100);
  // The provider's usage came last, after all the text: the meter read it all.
  expect(countTokens(PIECE.repeat(EVENTS))).toBeLessThan(REPORTED.completion);
  expect(item).toMatchObject({ status: 'interrupted', errorCode: 'upstream_timeout', promptTokens: REPORTED.prompt, completionTokens: REPORTED.completion });
  expect(item.amountMicroUsd).toBe(-(REPORTED.prompt * INPUT_MICRO_USD + REPORTED.completion * OUTPUT_MICRO_USD));
  const account = (await gw.gateway.stores.accounts.get(acct.accountId))!;
  expect(account).toMatchObject({ inFlight: 0, heldMicroUsd: 0, balanceMicroUsd: 10_000_000 + item.amountMicroUsd });

  // The client reads again: it gets what was read for it (charged already), to the end.
  resumed = true;
  response.resume();
  await new Promise((resolve) => response.once('end', resolve));
  const events = parseSse(Buffer.concat(received).toString('utf8'));
  expect(events.filter((e: any) => e.choices?.[0]?.delta?.content).length).toBe(EVENTS);
  expectBooksBalance(await books(gw, acct.accountId));
}, 30_000);

it('ends a stream whose client falls too far behind, charging what the upstream sent', async () => {
  const slow = await startTestGateway({ catalog: catalogOf(CATALOG), maxRequestMs: 20_000, maxBufferedEvents: 100 });
  try {
    behaviour = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk({ role: 'assistant', content: '' }));
      const lines: string[] = [];
      for (let i = 0; i < 60_000; i++) lines.push(chunk({ content: ` w${i % 10}` }));
      res.write(lines.join(''));
    };
    const acct = await createAccount(slow, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(new URL(`${slow.baseUrl}/chat/completions`), { method: 'POST', headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' } }, resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a long answer' }], stream: true, max_tokens: 100_000 }));
    });
    response.pause();
    let item;
    for (const until = Date.now() + 10_000; !item && Date.now() < until; await sleep(50)) {
      item = (await slow.gateway.stores.usage.all(acct.accountId)).find((i) => i.kind === 'request');
    }
    // Long before the 20 s deadline.
    if (item?.status !== 'interrupted') console.log('client_too_slow test: unexpected ledger item (status of the answer, the item, the last log lines)', response.statusCode, JSON.stringify(item), slow.logs.slice(-8).join('\n'));
    expect(item).toMatchObject({ status: 'interrupted', errorCode: 'client_too_slow', usageEstimated: true });
    // At least what the buffer held plus what the sockets took: more than the client read.
    expect(item!.completionTokens).toBeGreaterThan(100);
    expect(item!.amountMicroUsd).toBe(-(item!.promptTokens! * INPUT_MICRO_USD + item!.completionTokens! * OUTPUT_MICRO_USD));
    response.destroy();
    const b = await books(slow, acct.accountId);
    expectBooksBalance(b);
  } finally {
    await slow.stop();
  }
}, 30_000);

it('charges summarized thinking upward (the whole budget) when a Messages stream is cut short before its count came', async () => {
  const BUDGET = 3_000;
  behaviour = (_req, body, res) => {
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: BUDGET });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(
      anthropicEvent('message_start', {
        message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 40, output_tokens: 1 } },
      }),
    );
    res.write(anthropicEvent('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }));
    res.write(anthropicEvent('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'The user wants a summary of a long think.' } }));
    // Thinking goes on upstream; Anthropic will bill all of it, and the summary is all the client sees.
  };
  const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
  const res = await fetch(`${gw.baseUrl}/messages`, {
    method: 'POST',
    headers: { 'x-api-key': acct.key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude', max_tokens: 8_000, thinking: { type: 'enabled', budget_tokens: BUDGET }, stream: true, messages: [{ role: 'user', content: 'think' }] }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('long think')) text += new TextDecoder().decode((await reader.read()).value);
  await reader.cancel();
  await settledRequest(acct.accountId, 5_000);

  const b = await books(gw, acct.accountId);
  expectBooksBalance(b);
  const [item] = b.requests;
  expect(item).toMatchObject({ status: 'aborted', promptTokens: 40, completionTokens: BUDGET, usageEstimated: true });
  expect(item.amountMicroUsd).toBe(-(40 * INPUT_MICRO_USD + BUDGET * OUTPUT_MICRO_USD));
});

/**
 * Thinking on translated routes (issue 17, item 5): Claude reached through /v1/chat/completions or
 * /v1/responses with reasoning_effort. The client sees no thinking, but the meter does (the
 * provider's thinkingBilling(call), read by the one metered stream), and a stream cut short before the usage came is charged by the
 * same upward rule as /v1/messages: the budget sent plus the answer delivered after it.
 */
describe('thinking on translated routes', () => {
  const REPORTED = { input: 40, output: 2_345 };
  const ANSWER = ['Hello', ' there,', ' here is', ' the answer.'];
  /** What the stand-in does after the thinking began. */
  type Ending = 'mid_thinking' | 'after_thinking' | 'complete';
  let sentBudget: number | undefined;
  let wrote: Promise<void>;

  function thinkingStandIn(ending: Ending): Behaviour {
    let done!: () => void;
    wrote = new Promise((resolve) => (done = resolve));
    return (_req, body, res) => {
      sentBudget = body.thinking?.budget_tokens;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        anthropicEvent('message_start', {
          message: { id: 'msg_t', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: REPORTED.input, output_tokens: 1 } },
        }),
      );
      res.write(anthropicEvent('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }));
      res.write(anthropicEvent('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'A summary of a long think about the question.' } }));
      if (ending === 'mid_thinking') return done();
      res.write(anthropicEvent('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'sig' } }));
      res.write(anthropicEvent('content_block_stop', { index: 0 }));
      res.write(anthropicEvent('content_block_start', { index: 1, content_block: { type: 'text', text: '' } }));
      for (const text of ANSWER) res.write(anthropicEvent('content_block_delta', { index: 1, delta: { type: 'text_delta', text } }));
      if (ending === 'after_thinking') return done();
      res.write(anthropicEvent('content_block_stop', { index: 1 }));
      res.write(anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: REPORTED.output } }));
      res.end(anthropicEvent('message_stop', {}));
      done();
    };
  }

  async function newClient() {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
    return { acct, client: new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 }) };
  }

  /** Reads a stream until `enough` says so, then (unless the stream completes) aborts it as a client would. */
  async function readThenAbort<T>(stream: AsyncIterable<T> & { controller: AbortController }, enough: (seen: T[]) => boolean, ending: Ending): Promise<T[]> {
    const seen: T[] = [];
    for await (const event of stream) {
      seen.push(event);
      if (ending !== 'complete' && enough(seen)) {
        // The stand-in has written all it will; give the gateway's reader time to take it in.
        await wrote;
        await sleep(300);
        stream.controller.abort();
        break;
      }
    }
    return seen;
  }

  async function expectCharged(accountId: string, ending: Ending) {
    await settledRequest(accountId, 5_000);
    const b = await books(gw, accountId);
    expectBooksBalance(b);
    const [item] = b.requests;
    expect(sentBudget).toBe(1_024);
    if (ending === 'complete') {
      expect(item).toMatchObject({ status: 'completed', promptTokens: REPORTED.input, completionTokens: REPORTED.output });
      expect(item.amountMicroUsd).toBe(-(REPORTED.input * INPUT_MICRO_USD + REPORTED.output * OUTPUT_MICRO_USD));
      return;
    }
    // The documented rule (lambda/money/thinking.ts thinkingOutputFloor): the budget sent plus the answer's tokens after it.
    const floor = 1_024 + (ending === 'after_thinking' ? countTokens(ANSWER.join('')) : 0);
    expect(item).toMatchObject({ status: 'aborted', completionTokens: floor, usageEstimated: true });
    expect(item.promptTokens).toBeGreaterThan(0);
    expect(item.amountMicroUsd).toBe(-(item.promptTokens! * INPUT_MICRO_USD + floor * OUTPUT_MICRO_USD));
  }

  it.each<Ending>(['mid_thinking', 'after_thinking', 'complete'])('/v1/chat/completions, %s', async (ending) => {
    behaviour = thinkingStandIn(ending);
    const { acct, client } = await newClient();
    const stream = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'think' }], stream: true, max_tokens: 8_000, reasoning_effort: 'low' });
    const seen = await readThenAbort(stream, (s) => (ending === 'mid_thinking' ? s.length >= 1 : s.map((c) => c.choices[0]?.delta?.content ?? '').join('').includes('answer.')), ending);
    // The client sees the thinking in `reasoning_content` (issue 18), and no chunk passed only to the meter.
    expect(seen.every((c) => c.choices.length > 0 || c.usage)).toBe(true);
    const reasoning = seen.map((c) => (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '').join('');
    if (ending !== 'mid_thinking') expect(reasoning).toContain('long think');
    if (ending !== 'mid_thinking') expect(seen.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(ANSWER.join(''));
    await expectCharged(acct.accountId, ending);
  }, 20_000);

  it.each<Ending>(['mid_thinking', 'after_thinking', 'complete'])('/v1/responses, %s', async (ending) => {
    behaviour = thinkingStandIn(ending);
    const { acct, client } = await newClient();
    const stream = await client.responses.create({ model: 'claude', input: 'think', stream: true, max_output_tokens: 8_000, reasoning: { effort: 'low' } });
    const seen = await readThenAbort(
      stream,
      (s) => (ending === 'mid_thinking' ? s.some((e) => e.type === 'response.created') : s.some((e) => e.type === 'response.output_text.delta' && e.delta.includes('answer.'))),
      ending,
    );
    // The client sees the thinking as a reasoning item ahead of the message (issue 18), and is charged as before.
    if (ending !== 'mid_thinking') {
      const thinking = seen.filter((e) => e.type === 'response.reasoning_summary_text.delta').map((e) => (e as { delta: string }).delta).join('');
      expect(thinking).toContain('long think');
      const added = seen.flatMap((e) => (e.type === 'response.output_item.added' ? [e.item.type] : []));
      expect(added).toEqual(['reasoning', 'message']);
    }
    if (ending === 'complete') expect(seen.at(-1)?.type).toBe('response.completed');
    await expectCharged(acct.accountId, ending);
  }, 20_000);
});

it('charges Claude thinking on Bedrock upward when a /v1/chat/completions client aborts after it, before the usage came', async () => {
  const bedrock = new StandIn('h2c');
  const bedrockUrl = await bedrock.start();
  const catalog: CatalogFile = {
    models: {
      claude: { ...CATALOG.models.claude, routes: [{ provider: 'bedrock', base_url: bedrockUrl, model: 'anthropic.claude-sonnet-4-5-20250929-v1:0', region: 'us-east-1' }] },
    },
  };
  const onBedrock = await startTestGateway({ catalog: catalogOf(catalog), providers: { ...defaultProviders(), bedrock: testBedrockProvider() } });
  try {
    const answer = ['Hello', ' there,', ' here is', ' the answer.'];
    bedrockRoute(bedrock, {
      stream: {
        ...eventStreamReply([
          ['messageStart', { role: 'assistant' }],
          ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'A summary of a long think.' } } }],
          ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'sig' } } }],
          ['contentBlockStop', { contentBlockIndex: 0 }],
          ...answer.map((text): BedrockEvent => ['contentBlockDelta', { contentBlockIndex: 1, delta: { text } }]),
        ]),
        hang: 'after_parts',
      },
    });
    const acct = await createAccount(onBedrock, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
    const client = new OpenAI({ baseURL: onBedrock.baseUrl, apiKey: acct.key, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'think' }], stream: true, max_tokens: 8_000, reasoning_effort: 'low' });
    let content = '';
    for await (const c of stream) {
      content += c.choices[0]?.delta?.content ?? '';
      if (content.includes('answer.')) break; // the SDK aborts the request
    }
    expect(content).toBe(answer.join(''));
    expect(bedrock.lastJson()).toMatchObject({ additionalModelRequestFields: { thinking: { type: 'enabled', budget_tokens: 1_024 } } });

    let item;
    for (const until = Date.now() + 5_000; !item && Date.now() < until; await sleep(50)) {
      item = (await onBedrock.gateway.stores.usage.all(acct.accountId)).find((i) => i.kind === 'request');
    }
    const floor = 1_024 + countTokens(answer.join(''));
    expect(item).toMatchObject({ status: 'aborted', completionTokens: floor, usageEstimated: true });
    expect(item!.amountMicroUsd).toBe(-(item!.promptTokens! * INPUT_MICRO_USD + floor * OUTPUT_MICRO_USD));
    expectBooksBalance(await books(onBedrock, acct.accountId));
  } finally {
    await onBedrock.stop();
    await bedrock.stop();
  }
}, 20_000);
