import OpenAI from 'openai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { countTokens, warmTokenizer } from '../../lambda/money/tokens';
import { books, expectBooksBalance } from '../reliability/support';
import { createAccount, type TestAccount, type TestGateway } from '../support/gateway';
import { validateChunk, validateCompletion } from '../support/openai-schema';
import { MAX_OUTPUT, openaiLogprob, startThreeRoutes, threeRouteCatalog, type ThreeRoutes } from '../support/three-routes';

/**
 * Issue 18 follow-ups: what an OpenAI client asked for reaches it on a JSON chat answer as the
 * upstream sent it (per-choice logprobs, URL citations, the system fingerprint, the service tier,
 * every choice of `n > 1`), through the canonical answer, with the real `openai` package as the
 * client and a loopback stand-in as the upstream; `n` is paid for in the hold and the charge is
 * the usage the stand-in reported; routes that cannot answer logprobs or several choices refuse them.
 */

// Prices in nano-USD per token (USD per million ÷ 1,000 × 1e6).
const OA = { input: 2000, output: 8000, cached: 500 };
const micro = (nano: number) => Math.ceil(nano / 1000);
const CATALOG = threeRouteCatalog(
  { model: 'gpt-4o-mini-2024-07-18', pricing: { input_per_mtok: 2, output_per_mtok: 8, cached_input_per_mtok: 0.5 } },
  { mocked: { owned_by: 'test', pricing: { input_per_mtok: 2, output_per_mtok: 8 }, context_window: 100_000, max_output_tokens: MAX_OUTPUT, routes: [{ provider: 'mock', model: 'mock' }] } },
);

const logprob = openaiLogprob;

/** Per-token log probabilities as OpenAI answers `logprobs: true, top_logprobs: 2`. */
const HELLO_LOGPROBS = {
  content: [
    logprob('Hello', -0.00012, [['Hello', -0.00012], ['Hi', -9.250118]]),
    logprob('!', -0.0019, [['!', -0.0019], [' there', -6.3758]]),
  ],
  refusal: null,
};
const BONJOUR_LOGPROBS = { content: [logprob('Bonjour', -2.1, [['Bonjour', -2.1], ['Hello', -0.2]])], refusal: null };
const CITATION = { type: 'url_citation', url_citation: { url: 'https://example.com/greetings', title: 'Greetings', start_index: 0, end_index: 6 } };
const FINGERPRINT = 'fp_0ba0d124f1';

interface Plan {
  /** The choices the stand-in answers (as many as asked with `n`, else one). */
  choices: object[];
  usage?: object;
  tier?: string;
  /** More top-level fields of the JSON answer. */
  extra?: object;
}
let plan: Plan;
let routes: ThreeRoutes;
let upstream: ThreeRoutes['upstream'];
let gw: TestGateway;
let client: (key: string) => OpenAI;

function serve(req: IncomingMessage, body: any, res: ServerResponse): void {
  if ((req.url ?? '').endsWith('/chat/completions') && body.stream) {
    streamChoices(body, res);
    return;
  }
  if ((req.url ?? '').endsWith('/chat/completions')) {
    const n = body.n ?? 1;
    const choices = plan.choices.slice(0, n).map((c, index) => ({ index, ...c }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      id: 'chatcmpl-AbC123',
      object: 'chat.completion',
      created: 1765000000,
      model: body.model,
      choices,
      ...(plan.usage && { usage: plan.usage }),
      service_tier: plan.tier ?? 'default',
      system_fingerprint: FINGERPRINT,
      ...plan.extra,
    }));
    return;
  }
  // Anthropic: never to be called here.
  res.writeHead(500, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'not expected' } }));
}

/** The planned choices as OpenAI streams them: one chunk per token, the choices interleaved, a finish per choice, then the usage chunk. */
function streamChoices(body: any, res: ServerResponse): void {
  const base = { id: 'chatcmpl-AbC123', object: 'chat.completion.chunk', created: 1765000000, model: body.model, service_tier: plan.tier ?? 'default', system_fingerprint: FINGERPRINT };
  const chunk = (choices: object[], usage: object | null = null) => `data: ${JSON.stringify({ ...base, choices, usage })}\n\n`;
  const planned = plan.choices.slice(0, body.n ?? 1) as Array<{ logprobs: { content: Array<{ token: string }> } | null; finish_reason: string }>;
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  planned.forEach((_c, index) => res.write(chunk([{ index, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }])));
  const longest = Math.max(...planned.map((c) => c.logprobs?.content.length ?? 0));
  for (let t = 0; t < longest; t++) {
    planned.forEach((c, index) => {
      const token = c.logprobs?.content[t];
      if (token) res.write(chunk([{ index, delta: { content: token.token }, logprobs: { content: [token], refusal: null }, finish_reason: null }]));
    });
  }
  planned.forEach((c, index) => res.write(chunk([{ index, delta: {}, logprobs: null, finish_reason: c.finish_reason }])));
  if (body.stream_options?.include_usage && plan.usage) res.write(chunk([], plan.usage));
  res.end('data: [DONE]\n\n');
}

const helloChoice = { message: { role: 'assistant', content: 'Hello!', refusal: null, annotations: [CITATION] }, logprobs: HELLO_LOGPROBS, finish_reason: 'stop' };
const bonjourChoice = { message: { role: 'assistant', content: 'Bonjour', refusal: null, annotations: [] }, logprobs: BONJOUR_LOGPROBS, finish_reason: 'length' };
/** What OpenAI reports for a greeting of two choices: both choices' output in `completion_tokens`. */
const TWO_CHOICES_USAGE = {
  prompt_tokens: 12,
  completion_tokens: 37,
  total_tokens: 49,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};

beforeAll(async () => {
  await warmTokenizer();
  routes = await startThreeRoutes(CATALOG, serve);
  ({ gw, upstream } = routes);
  client = (key) => new OpenAI({ baseURL: gw.baseUrl, apiKey: key, maxRetries: 0 });
});

beforeEach(() => {
  plan = { choices: [helloChoice, bonjourChoice], usage: TWO_CHOICES_USAGE };
  routes.resetBedrock();
});

afterAll(async () => {
  await routes?.stop();
});

const account = (creditsMicroUsd = 10_000_000) => createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 10_000_000, creditsMicroUsd });
const hello = [{ role: 'user' as const, content: 'Say hello' }];

/** The one request item of a fresh account, once settled, with the books checked. */
async function onlyItem(acct: TestAccount) {
  const b = await books(gw, acct.accountId);
  expectBooksBalance(b);
  expect(b.requests).toHaveLength(1);
  return b.requests[0];
}

describe('a JSON chat answer from an OpenAI-compatible route keeps what the client asked for', () => {
  it('gives back the per-token logprobs, citations, system_fingerprint and service_tier the upstream sent', async () => {
    plan.usage = { ...TWO_CHOICES_USAGE, completion_tokens: 2, total_tokens: 14 };
    const acct = await account();
    const completion = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, logprobs: true, top_logprobs: 2, max_tokens: 50 });
    validateCompletion(completion);
    // The asks reached the upstream as the client wrote them.
    expect(upstream.requests.at(-1)).toMatchObject({ logprobs: true, top_logprobs: 2 });
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0].logprobs).toEqual(HELLO_LOGPROBS);
    expect(completion.choices[0].message).toMatchObject({ content: 'Hello!', annotations: [CITATION] });
    expect(completion.system_fingerprint).toBe(FINGERPRINT);
    expect(completion.service_tier).toBe('default');
    expect(completion.model).toBe('oa');
    const item = await onlyItem(acct);
    expect(item.amountMicroUsd).toBe(-micro(12 * OA.input + 2 * OA.output));
  });

  it('gives a legacy functions client its function_call and finish_reason, and echoes the metadata a stored completion carries', async () => {
    const call = { name: 'get_weather', arguments: '{"city":"Paris"}' };
    plan.choices = [{ message: { role: 'assistant', content: null, refusal: null, function_call: call }, logprobs: null, finish_reason: 'function_call' }];
    plan.extra = { metadata: { team: 'search' } };
    const acct = await account();
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'oa', messages: hello, max_tokens: 50, store: true, metadata: { team: 'search' }, functions: [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }] }),
    });
    const completion = await res.json();
    validateCompletion(completion);
    expect(upstream.requests.at(-1)).toMatchObject({ store: true, metadata: { team: 'search' }, functions: [{ name: 'get_weather' }] });
    expect(completion.choices[0]).toMatchObject({ message: { content: null, function_call: call }, finish_reason: 'function_call' });
    expect(completion.metadata).toEqual({ team: 'search' });
    expect(completion.model).toBe('oa');
  });

  it('answers logprobs: null, not a made-up list, when the client did not ask', async () => {
    plan.choices = [{ ...helloChoice, logprobs: null }];
    const acct = await account();
    const completion = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, max_tokens: 50 });
    validateCompletion(completion);
    expect(completion.choices[0].logprobs).toBeNull();
    expect(upstream.requests.at(-1)).not.toHaveProperty('logprobs');
  });

  it('serves n = 2 on JSON: two choices in index order, each with its own text, finish and logprobs, charged the usage reported to the micro-dollar', async () => {
    const acct = await account();
    const completion = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, n: 2, logprobs: true, max_tokens: 50 });
    validateCompletion(completion);
    expect(upstream.requests.at(-1)).toMatchObject({ n: 2 });
    expect(completion.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
      [0, 'Hello!', 'stop'],
      [1, 'Bonjour', 'length'],
    ]);
    expect(completion.choices.map((c) => c.logprobs)).toEqual([HELLO_LOGPROBS, BONJOUR_LOGPROBS]);
    expect(completion.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 37, total_tokens: 49 });
    const item = await onlyItem(acct);
    expect(item).toMatchObject({ promptTokens: 12, completionTokens: 37 });
    expect(item.usageEstimated ?? false).toBe(false);
    expect(item.amountMicroUsd).toBe(-micro(12 * OA.input + 37 * OA.output));
  });

  it('relays n = 2 streamed with each choice\'s logprobs and the fingerprint as sent, charged the usage reported to the micro-dollar', async () => {
    const acct = await account();
    const stream = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, n: 2, logprobs: true, max_tokens: 50, stream: true });
    const texts = ['', ''];
    const logprobs: unknown[][] = [[], []];
    for await (const chunk of stream) {
      validateChunk(chunk);
      expect(chunk.system_fingerprint).toBe(FINGERPRINT);
      expect(chunk).not.toHaveProperty('usage');
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? '';
        logprobs[c.index].push(...(c.logprobs?.content ?? []));
      }
    }
    expect(texts).toEqual(['Hello!', 'Bonjour']);
    expect(logprobs).toEqual([HELLO_LOGPROBS.content, BONJOUR_LOGPROBS.content]);
    // The gateway asked for the usage the client did not, and billed it.
    expect(upstream.requests.at(-1)).toMatchObject({ n: 2, stream_options: { include_usage: true } });
    const item = await onlyItem(acct);
    expect(item).toMatchObject({ promptTokens: 12, completionTokens: 37 });
    expect(item.amountMicroUsd).toBe(-micro(12 * OA.input + 37 * OA.output));
  });

  it('counts the text of every choice when the upstream reports no usage', async () => {
    plan.usage = undefined;
    const acct = await account();
    const completion = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, n: 2, max_tokens: 50 });
    expect(completion.choices).toHaveLength(2);
    const item = await onlyItem(acct);
    expect(item.usageEstimated).toBe(true);
    expect(item.completionTokens).toBe(countTokens('Hello!Bonjour'));
    expect(item.completionTokens).toBeGreaterThan(countTokens('Hello!'));
  });

  it('holds the output limit once per choice: n = 2 that the balance cannot cover twice is a 402 before any upstream call, n = 1 is served', async () => {
    // One choice of 1,000 output tokens holds 8,000 µ$ (plus the prompt); two hold 16,000 µ$.
    const acct = await account(12_000);
    const before = upstream.requests.length;
    const twice = client(acct.key).chat.completions.create({ model: 'oa', messages: hello, n: 2, max_tokens: MAX_OUTPUT });
    await expect(twice).rejects.toMatchObject({ status: 402, code: 'insufficient_quota' });
    expect(upstream.requests.length).toBe(before);
    plan.choices = [helloChoice];
    const once = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, max_tokens: MAX_OUTPUT });
    expect(once.choices).toHaveLength(1);
  });

  it('serves n = 2 from the mock, JSON and stream, each choice its own', async () => {
    const acct = await account();
    const json = await client(acct.key).chat.completions.create({ model: 'mocked', messages: hello, n: 2, max_tokens: 50 });
    validateCompletion(json);
    expect(json.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(json.choices[1].message.content).toContain('(choice 1)');

    const stream = await client(acct.key).chat.completions.create({ model: 'mocked', messages: hello, n: 2, max_tokens: 50, stream: true });
    const texts = ['', ''];
    const finishes: Array<string | null> = [];
    for await (const chunk of stream) {
      validateChunk(chunk);
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finishes[c.index] = c.finish_reason;
      }
    }
    expect(texts).toEqual(json.choices.map((c) => c.message.content));
    expect(finishes).toEqual(['stop', 'stop']);
  });
});

describe('the mock answers logprobs as it answers words', () => {
  it('gives each word a token with logprob 0, JSON and stream alike, every choice', async () => {
    const acct = await account();
    const json = await client(acct.key).chat.completions.create({ model: 'mocked', messages: hello, n: 2, logprobs: true, top_logprobs: 1, max_tokens: 50 });
    validateCompletion(json);
    for (const c of json.choices) {
      expect(c.logprobs!.content!.map((t) => t.token).join('')).toBe(c.message.content);
      expect(c.logprobs!.content!.every((t) => t.logprob === 0 && t.top_logprobs.length === 1)).toBe(true);
    }
    const stream = await client(acct.key).chat.completions.create({ model: 'mocked', messages: hello, n: 2, logprobs: true, top_logprobs: 1, max_tokens: 50, stream: true });
    const tokens: string[][] = [[], []];
    for await (const chunk of stream) {
      validateChunk(chunk);
      for (const c of chunk.choices) {
        const chunkTokens = (c.logprobs?.content ?? []).map((t) => t.token);
        tokens[c.index].push(...chunkTokens);
        // As OpenAI sends them: a chunk's logprobs are the tokens of its own content.
        expect(chunkTokens.join('')).toBe(c.delta.content ?? '');
      }
    }
    expect(tokens.map((t) => t.join(''))).toEqual(json.choices.map((c) => c.message.content));
  });
});

describe('routes that cannot answer logprobs or several choices refuse them by name', () => {
  it.each([
    ['Anthropic', 'cl'],
    ['Bedrock', 'cl-bedrock'],
  ])('%s: logprobs: true and n = 2 are 400s naming the parameter, JSON and stream, nothing sent upstream', async (_name, model) => {
    const acct = await account();
    const sent = upstream.requests.length + routes.bedrock.requests.length;
    for (const stream of [false, true]) {
      await expect(client(acct.key).chat.completions.create({ model, messages: hello, logprobs: true, stream })).rejects.toMatchObject({ status: 400, param: 'logprobs', code: 'unsupported_parameter' });
      await expect(client(acct.key).chat.completions.create({ model, messages: hello, n: 2, stream })).rejects.toMatchObject({ status: 400, param: 'n', code: 'unsupported_parameter' });
    }
    expect(upstream.requests.length + routes.bedrock.requests.length).toBe(sent);
    // Nothing was held or charged for the refusals.
    const b = await books(gw, acct.accountId);
    expectBooksBalance(b);
    expect(b.requests.filter((r) => r.amountMicroUsd !== 0)).toEqual([]);
  });

});

describe('what the gateway could carry but not price', () => {
  it.each([
    ['modalities', { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }],
    ['audio', { audio: { voice: 'alloy', format: 'wav' } }],
  ])('refuses audio output (%s) with a 400 before admission and any upstream call', async (param, asks) => {
    const acct = await account();
    const before = upstream.requests.length;
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'oa', messages: hello, ...asks }),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ type: 'invalid_request_error', param, code: 'unsupported_parameter' });
    expect(upstream.requests.length).toBe(before);
    expect((await books(gw, acct.accountId)).requests).toEqual([]);
  });

  it('still serves modalities: ["text"]', async () => {
    plan.choices = [helloChoice];
    const acct = await account();
    const completion = await client(acct.key).chat.completions.create({ model: 'oa', messages: hello, modalities: ['text'], max_tokens: 50 });
    expect(completion.choices[0].message.content).toBe('Hello!');
    expect(upstream.requests.at(-1)).toMatchObject({ modalities: ['text'] });
  });
});
