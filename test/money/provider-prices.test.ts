import type { IncomingMessage, ServerResponse } from 'node:http';
import { countTokens as cl100kCount } from 'gpt-tokenizer/encoding/cl100k_base';
import { countTokens as o200kCount } from 'gpt-tokenizer/encoding/o200k_base';
import type { CatalogFile } from '../../lambda/catalog';
import { DEFAULT_SERVER_TOOL_USES, SERVER_TOOL_RESULT_TOKENS } from '../../lambda/money/billing-ask';
import { warmCl100kTokenizer, warmTokenizer } from '../../lambda/money/tokens';
import { defaultProviders } from '../../lambda/providers';
import { jsonReply, route as bedrockRoute, testBedrockProvider } from '../providers/bedrock/stand-in';
import { StandIn } from '../providers/stand-in';
import { books, expectBooksBalance, parseSse, postChat } from '../reliability/support';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { startUpstream } from '../support/upstream';

/**
 * Issue 17: every class of usage a provider bills, carried from the stand-in's report to the
 * ledger, on every endpoint × route, and charged to the micro-dollar by the catalog's published
 * prices; what the catalog does not price is refused before the upstream is called; the hold
 * bounds the bill.
 */

// Prices in nano-USD per token (USD per million ÷ 1,000 × 1e6), written out so that each expected charge is plain arithmetic.
const OA = { input: 2000, output: 8000, cached: 500, priority: { input: 4000, output: 16000, cached: 1000 }, webSearchPerCall: 25_000_000 };
const CL = { input: 3000, output: 15000, cached: 300, write5m: 3750, write1h: 6000, webSearchPerCall: 10_000_000 };
const CL_CONTEXT = 200_000;
const micro = (nano: number) => Math.ceil(nano / 1000);

const oaRoute = () => ({ provider: 'openai-compatible' as const, base_url: 'http://placeholder/v1', model: 'up-oa' });
const clRoute = () => ({ provider: 'anthropic' as const, base_url: 'http://placeholder', model: 'claude-up' });

const CATALOG: CatalogFile = {
  models: {
    oa: {
      owned_by: 'test',
      pricing: { input_per_mtok: 2, output_per_mtok: 8, cached_input_per_mtok: 0.5, service_tiers: { priority: { input_per_mtok: 4, output_per_mtok: 16, cached_input_per_mtok: 1 } }, server_tools: { web_search: 0.025 } },
      context_window: 100_000,
      max_output_tokens: 1000,
      routes: [oaRoute()],
    },
    'oa-plain': { owned_by: 'test', pricing: { input_per_mtok: 2, output_per_mtok: 8 }, context_window: 100_000, max_output_tokens: 1000, routes: [oaRoute()] },
    'oa-long': {
      owned_by: 'test',
      pricing: { input_per_mtok: 1, output_per_mtok: 4, long_context: { above_input_tokens: 1000, input_per_mtok: 2, output_per_mtok: 8 } },
      context_window: 100_000,
      max_output_tokens: 1000,
      routes: [oaRoute()],
    },
    // Cache writes unpriced: Anthropic's published 1.25× and 2× input apply.
    cl: {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, server_tools: { web_search: 0.01 } },
      context_window: CL_CONTEXT,
      max_output_tokens: 1000,
      routes: [clRoute()],
    },
    'cl-plain': { owned_by: 'anthropic', pricing: { input_per_mtok: 3, output_per_mtok: 15 }, context_window: CL_CONTEXT, max_output_tokens: 1000, routes: [clRoute()] },
    'cl-bedrock': {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 },
      context_window: CL_CONTEXT,
      max_output_tokens: 1000,
      routes: [{ provider: 'bedrock', base_url: 'http://placeholder', region: 'us-east-1', model: 'anthropic.claude-sonnet-4-6' }],
    },
    emb: { kind: 'embedding', owned_by: 'openai', pricing: { input_per_mtok: 0.02 }, context_window: 8191, routes: [{ provider: 'openai-compatible', base_url: 'http://placeholder/v1', model: 'text-embedding-3-small' }] },
  },
};

/** What Anthropic reports for a turn with cache reads, writes of both lifetimes and three web searches. */
const CLAUDE_USAGE = {
  input_tokens: 100,
  cache_read_input_tokens: 2000,
  cache_creation_input_tokens: 1000,
  cache_creation: { ephemeral_5m_input_tokens: 400, ephemeral_1h_input_tokens: 600 },
  output_tokens: 50,
  server_tool_use: { web_search_requests: 3 },
  service_tier: 'standard',
};
const CLAUDE_CHARGE = micro(100 * CL.input + 2000 * CL.cached + 400 * CL.write5m + 600 * CL.write1h + 50 * CL.output + 3 * CL.webSearchPerCall);

/** What OpenAI reports for a reasoning answer with cached input. */
const OPENAI_USAGE = {
  prompt_tokens: 1000,
  completion_tokens: 300,
  total_tokens: 1300,
  prompt_tokens_details: { cached_tokens: 400 },
  completion_tokens_details: { reasoning_tokens: 200 },
};
const OPENAI_PRIORITY_CHARGE = micro(600 * OA.priority.input + 400 * OA.priority.cached + 300 * OA.priority.output);
const OPENAI_BASE_CHARGE = micro(600 * OA.input + 400 * OA.cached + 300 * OA.output);

interface StandInPlan {
  /** Top-level `service_tier` of the OpenAI answer (every chunk, in a stream). */
  tier?: string;
  openaiUsage: object;
  claudeUsage: object;
  /** Embeddings: prompt_tokens reported. */
  embeddingTokens?: number;
}
let plan: StandInPlan;
const calls: Array<{ path: string; body: any }> = [];
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const bedrock = new StandIn('h2c');
let gw: TestGateway;

function serve(req: IncomingMessage, body: any, res: ServerResponse): void {
  const path = req.url ?? '';
  calls.push({ path, body });
  if (path.endsWith('/embeddings')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model: body.model, usage: { prompt_tokens: plan.embeddingTokens, total_tokens: plan.embeddingTokens } }));
    return;
  }
  if (path.endsWith('/chat/completions')) {
    const tier = plan.tier ? { service_tier: plan.tier } : {};
    const base = { id: 'chatcmpl-1', created: 1, model: 'up-oa', system_fingerprint: null, ...tier };
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'answer', refusal: null }, logprobs: null, finish_reason: 'stop' }], usage: plan.openaiUsage }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunk = (choices: object[], usage: object | null) => `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices, usage })}\n\n`;
    res.write(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], null));
    res.write(chunk([{ index: 0, delta: { content: 'answer' }, logprobs: null, finish_reason: null }], null));
    res.write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], null));
    res.write(chunk([], plan.openaiUsage));
    res.end('data: [DONE]\n\n');
    return;
  }
  // Anthropic's Messages API.
  const message = { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-up', content: [{ type: 'text', text: 'answer' }], stop_reason: 'end_turn', stop_sequence: null, usage: plan.claudeUsage };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(message));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const event = (type: string, data: object) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  // message_start carries the write split; message_delta cumulative totals without it (as Anthropic sends them).
  const { server_tool_use: tools, output_tokens: _out, ...start } = plan.claudeUsage as Record<string, unknown>;
  event('message_start', { message: { ...message, content: [], stop_reason: null, usage: { ...start, output_tokens: 1 } } });
  event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
  event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'answer' } });
  event('content_block_stop', { index: 0 });
  const { cache_creation: _split, service_tier: _tier, ...totals } = plan.claudeUsage as Record<string, unknown>;
  event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { ...totals, ...(tools ? { server_tool_use: tools } : {}) } });
  event('message_stop', {});
  res.end();
}

beforeAll(async () => {
  await Promise.all([warmTokenizer(), warmCl100kTokenizer()]);
  upstream = await startUpstream(async (req, body, res) => serve(req, body, res));
  const origin = upstream.url.replace(/\/v1$/, '');
  const bedrockUrl = await bedrock.start();
  for (const model of Object.values(CATALOG.models)) {
    for (const r of model.routes) {
      if (r.provider === 'openai-compatible') r.base_url = upstream.url;
      if (r.provider === 'anthropic') r.base_url = origin;
      if (r.provider === 'bedrock') r.base_url = bedrockUrl;
    }
  }
  gw = await startTestGateway({ catalog: catalogOf(CATALOG), providers: { ...defaultProviders(), bedrock: testBedrockProvider() } });
});

beforeEach(() => {
  plan = { openaiUsage: OPENAI_USAGE, claudeUsage: CLAUDE_USAGE };
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
  await bedrock.stop();
});

const account = () => createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });

function post(path: string, key: string, body: object, anthropic = false): Promise<Response> {
  return fetch(`${gw.baseUrl}${path}`, {
    method: 'POST',
    headers: anthropic ? { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' } : { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** The one request item of a fresh account, once settled, with the books checked. */
async function onlyItem(acct: TestAccount) {
  const b = await books(gw, acct.accountId);
  expectBooksBalance(b);
  expect(b.requests).toHaveLength(1);
  return b.requests[0];
}

const userTurn = [{ role: 'user', content: 'hello there' }];

describe('Anthropic usage, carried whole (cache writes by lifetime, reads, web searches)', () => {
  const cases: Array<[string, (key: string) => Promise<Response>]> = [
    ['/v1/messages JSON (native)', (key) => post('/messages', key, { model: 'cl', max_tokens: 100, messages: userTurn }, true)],
    ['/v1/messages stream (native: the split only in message_start)', (key) => post('/messages', key, { model: 'cl', max_tokens: 100, messages: userTurn, stream: true }, true)],
    ['/v1/chat/completions JSON (translated)', (key) => postChat(gw, key, { model: 'cl', messages: userTurn, max_tokens: 100 })],
    ['/v1/chat/completions stream (translated)', (key) => postChat(gw, key, { model: 'cl', messages: userTurn, max_tokens: 100, stream: true, stream_options: { include_usage: true } })],
    ['/v1/responses JSON (translated)', (key) => post('/responses', key, { model: 'cl', input: 'hello there', max_output_tokens: 100, store: false })],
    ['/v1/responses stream (translated)', (key) => post('/responses', key, { model: 'cl', input: 'hello there', max_output_tokens: 100, store: false, stream: true })],
  ];
  it.each(cases)('%s: charged each class at its price, to the micro-dollar', async (_name, send) => {
    const acct = await account();
    const res = await send(acct.key);
    expect(res.status).toBe(200);
    await res.text();
    const item = await onlyItem(acct);
    expect(item.amountMicroUsd).toBe(-CLAUDE_CHARGE);
    expect(item).toMatchObject({ promptTokens: 3100, cachedTokens: 2000, cacheWriteTokens: 400, cacheWrite1hTokens: 600, completionTokens: 50, serverToolCalls: 3, serviceTier: 'standard' });
    expect(item.unchargedMicroUsd ?? 0).toBe(0);
  });

  it('gives each client the usage in its own wire: chat prompt_tokens with the writes, Responses cache_write_tokens', async () => {
    const acct = await account();
    const chat = await (await postChat(gw, acct.key, { model: 'cl', messages: userTurn, max_tokens: 100 })).json();
    expect(chat.usage).toEqual({ prompt_tokens: 3100, completion_tokens: 50, total_tokens: 3150, prompt_tokens_details: { cached_tokens: 2000 } });
    const response = await (await post('/responses', acct.key, { model: 'cl', input: 'hi', store: false })).json();
    expect(response.usage.input_tokens_details).toEqual({ cached_tokens: 2000, cache_write_tokens: 1000 });
  });

  it('a Bedrock route: cacheRead/cacheWrite counts charged as reads and 5-minute writes; /v1/messages answers them as cache_creation_input_tokens', async () => {
    bedrockRoute(bedrock, {
      converse: jsonReply({
        output: { message: { role: 'assistant', content: [{ text: 'answer' }] } },
        stopReason: 'end_turn',
        usage: { inputTokens: 100, outputTokens: 50, cacheReadInputTokens: 2000, cacheWriteInputTokens: 1000, totalTokens: 3150 },
        metrics: { latencyMs: 10 },
      }),
    });
    const expected = micro(100 * CL.input + 2000 * CL.cached + 1000 * CL.write5m + 50 * CL.output);
    for (const send of [
      (key: string) => postChat(gw, key, { model: 'cl-bedrock', messages: userTurn, max_tokens: 100 }),
      (key: string) => post('/messages', key, { model: 'cl-bedrock', max_tokens: 100, messages: userTurn }, true),
    ]) {
      const acct = await account();
      const body = await (await send(acct.key)).json();
      if (body.type === 'message') expect(body.usage).toMatchObject({ input_tokens: 100, cache_read_input_tokens: 2000, cache_creation_input_tokens: 1000, output_tokens: 50 });
      const item = await onlyItem(acct);
      expect(item.amountMicroUsd).toBe(-expected);
      expect(item).toMatchObject({ cacheWriteTokens: 1000, cachedTokens: 2000 });
    }
  });
});

describe('OpenAI usage: cached input, reasoning inside the output, the tier that answered', () => {
  it('bills the tier the JSON answer names (priority), reasoning tokens once', async () => {
    plan.tier = 'priority';
    for (const send of [
      (key: string) => postChat(gw, key, { model: 'oa', messages: userTurn }),
      (key: string) => post('/responses', key, { model: 'oa', input: 'hello', store: false }),
      (key: string) => post('/messages', key, { model: 'oa', max_tokens: 100, messages: userTurn }, true),
    ]) {
      const acct = await account();
      expect((await send(acct.key)).status).toBe(200);
      const item = await onlyItem(acct);
      expect(item.amountMicroUsd).toBe(-OPENAI_PRIORITY_CHARGE);
      expect(item).toMatchObject({ promptTokens: 1000, cachedTokens: 400, completionTokens: 300, reasoningTokens: 200, serviceTier: 'priority' });
    }
  });

  it('bills the base prices when a stream answers `default` to a request for priority', async () => {
    plan.tier = 'default';
    const acct = await account();
    const res = await postChat(gw, acct.key, { model: 'oa', messages: userTurn, stream: true, service_tier: 'priority' });
    expect(parseSse(await res.text()).at(-1)).toBe('[DONE]');
    expect(calls.at(-1)!.body.service_tier).toBe('priority');
    const item = await onlyItem(acct);
    expect(item.amountMicroUsd).toBe(-OPENAI_BASE_CHARGE);
    expect(item.serviceTier).toBe('default');
  });

  it('bills the requested tier when the answer names none', async () => {
    const acct = await account();
    expect((await postChat(gw, acct.key, { model: 'oa', messages: userTurn, service_tier: 'priority' })).status).toBe(200);
    const item = await onlyItem(acct);
    expect(item.amountMicroUsd).toBe(-OPENAI_PRIORITY_CHARGE);
    expect(item.serviceTier).toBe('priority');
  });

  it('bills long-context prices for a prompt above the threshold, and base prices below it', async () => {
    for (const [prompt, expected] of [
      [2000, micro(2000 * 2000 + 100 * 8000)],
      [500, micro(500 * 1000 + 100 * 4000)],
    ]) {
      plan.openaiUsage = { prompt_tokens: prompt, completion_tokens: 100, total_tokens: prompt + 100 };
      const acct = await account();
      expect((await postChat(gw, acct.key, { model: 'oa-long', messages: userTurn })).status).toBe(200);
      expect((await onlyItem(acct)).amountMicroUsd).toBe(-expected);
    }
  });

  it('charges web_search_options one search at the published per-call price, on chat and as a Responses web_search tool', async () => {
    plan.openaiUsage = { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100 };
    const expected = micro(1000 * OA.input + 100 * OA.output + OA.webSearchPerCall);
    for (const [send, check] of [
      [(key: string) => postChat(gw, key, { model: 'oa', messages: userTurn, web_search_options: {} }), (body: any) => expect(body.web_search_options).toEqual({})],
      [
        (key: string) => post('/responses', key, { model: 'oa', input: 'news?', store: false, tools: [{ type: 'web_search', search_context_size: 'low' }] }),
        (body: any) => expect(body.web_search_options).toEqual({ search_context_size: 'low' }),
      ],
    ] as const) {
      const acct = await account();
      expect((await send(acct.key)).status).toBe(200);
      check(calls.at(-1)!.body);
      const item = await onlyItem(acct);
      expect(item.amountMicroUsd).toBe(-expected);
      expect(item.serverToolCalls).toBe(1);
    }
  });
});

describe('nothing billable reaches a provider unpriced', () => {
  const refusals: Array<[string, string, object, boolean, string | null, RegExp]> = [
    ['a service tier the model does not price', '/chat/completions', { model: 'oa-plain', messages: userTurn, service_tier: 'priority' }, false, 'service_tier', /'priority'/],
    ['flex, which only priority is priced for', '/chat/completions', { model: 'oa', messages: userTurn, service_tier: 'flex' }, false, 'service_tier', /'flex'/],
    ['web_search_options on a model with no web_search price', '/chat/completions', { model: 'oa-plain', messages: userTurn, web_search_options: {} }, false, 'web_search_options', /web_search_options/],
    ['an Anthropic server tool the model does not price', '/messages', { model: 'cl-plain', max_tokens: 10, messages: userTurn, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, true, null, /web_search_20250305/],
    ['code execution (billed by container time, unpriced)', '/messages', { model: 'cl', max_tokens: 10, messages: userTurn, tools: [{ type: 'code_execution_20250825', name: 'code_execution' }] }, true, null, /code_execution_20250825/],
    ['mcp_servers', '/messages', { model: 'cl', max_tokens: 10, messages: userTurn, mcp_servers: [{ type: 'url', url: 'https://mcp.example', name: 'x' }] }, true, null, /mcp_servers/],
    ['an Anthropic service tier other than auto / standard_only', '/messages', { model: 'cl', max_tokens: 10, messages: userTurn, service_tier: 'priority' }, true, null, /'priority'/],
  ];
  it.each(refusals)('%s: 400 naming it, upstream not called, nothing held or charged', async (_name, path, body, anthropic, param, message) => {
    const acct = await account();
    const before = calls.length;
    const res = await post(path, acct.key, body, anthropic);
    expect(res.status).toBe(400);
    const error = await res.json();
    if (anthropic) {
      expect(error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
      expect(error.error.message).toMatch(message);
    } else {
      expect(error.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(error.error.message).toMatch(message);
    }
    expect(calls.length).toBe(before);
    const b = await books(gw, acct.accountId);
    expect(b.requests).toEqual([]);
    expect(b.balance).toBe(10_000_000);
  });

  it('drops a Responses web_search or mcp tool the model does not price (Codex sends one with every turn): not sent, named, not billed', async () => {
    const acct = await account();
    plan.openaiUsage = { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 };
    const res = await post('/responses', acct.key, { model: 'oa-plain', input: 'hi', store: false, tools: [{ type: 'web_search_preview' }, { type: 'mcp', server_label: 'x', server_url: 'https://mcp.example' }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-itapi-ignored')).toBe('web_search_preview, mcp');
    expect(calls.at(-1)!.body.web_search_options).toBeUndefined();
    expect(calls.at(-1)!.body.tools).toBeUndefined();
    const item = await onlyItem(acct);
    expect(item.serverToolCalls).toBeUndefined();
    expect(item.amountMicroUsd).toBe(-micro(100 * 2000 + 10 * 8000));
  });

  it.each([
    ['/chat/completions', { model: 'oa-plain', messages: userTurn, service_tier: 'auto' }, false],
    ['/chat/completions', { model: 'oa-plain', messages: userTurn, service_tier: 'default' }, false],
    ['/messages', { model: 'cl-plain', max_tokens: 10, messages: userTurn, service_tier: 'auto' }, true],
  ] as const)('%s does not refuse the base tier %j', async (path, body, anthropic) => {
    const acct = await account();
    expect((await post(path, acct.key, body, anthropic)).status).toBe(200);
  });
});

describe('the hold bounds the bill', () => {
  it('holds web search at max_uses × its price plus its results, and sends the max_uses it held for', async () => {
    const acct = await account();
    const res = await post('/messages', acct.key, { model: 'cl', max_tokens: 100, messages: userTurn, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, true);
    expect(res.status).toBe(200);
    expect(calls.at(-1)!.body.tools[0].max_uses).toBe(DEFAULT_SERVER_TOOL_USES);
    const item = await onlyItem(acct);
    const prompt = item.estimatedTokens! - 100;
    expect(prompt).toBeGreaterThan(DEFAULT_SERVER_TOOL_USES * SERVER_TOOL_RESULT_TOKENS);
    expect(item.holdMicroUsd).toBe(micro(prompt * CL.input + DEFAULT_SERVER_TOOL_USES * CL.webSearchPerCall + 100 * CL.output));
    // The three searches the stand-in reports are inside what was held.
    expect(item.holdMicroUsd!).toBeGreaterThanOrEqual(CLAUDE_CHARGE);
  });

  it('holds the prompt at the 1-hour write price when a cache_control asks for an hour', async () => {
    const acct = await account();
    const system = [{ type: 'text', text: 'a long system prompt '.repeat(50), cache_control: { type: 'ephemeral', ttl: '1h' } }];
    expect((await post('/messages', acct.key, { model: 'cl', max_tokens: 100, system, messages: userTurn }, true)).status).toBe(200);
    const item = await onlyItem(acct);
    expect(item.holdMicroUsd).toBe(micro((item.estimatedTokens! - 100) * CL.write1h + 100 * CL.output));
  });

  it('holds a document by URL at the context window for money, counts an estimate in TPM, and settles the reported tokens', async () => {
    plan.claudeUsage = { input_tokens: 150_000, output_tokens: 50 };
    const acct = await account();
    const content = [{ type: 'document', source: { type: 'url', url: 'https://example.com/big.pdf' } }, { type: 'text', text: 'summarise' }];
    expect((await post('/messages', acct.key, { model: 'cl', max_tokens: 100, messages: [{ role: 'user', content }] }, true)).status).toBe(200);
    const item = await onlyItem(acct);
    expect(item.holdMicroUsd).toBe(micro(CL_CONTEXT * CL.input + 100 * CL.output));
    expect(item.estimatedTokens!).toBeLessThan(5_000);
    expect(item.amountMicroUsd).toBe(-micro(150_000 * CL.input + 50 * CL.output));
    expect(item.unchargedMicroUsd ?? 0).toBe(0);
    const minute = (await gw.gateway.stores.accounts.get(acct.accountId))!.counts.tokens;
    expect(minute).toBe(150_050);
  });

  it('counts legacy functions in the prompt estimate (hold and TPM)', async () => {
    const functions = Array.from({ length: 20 }, (_, i) => ({ name: `lookup_${i}`, description: 'Looks a record up in the inventory database by its id. '.repeat(5), parameters: { type: 'object', properties: { id: { type: 'string' } } } }));
    const plain = await account();
    await postChat(gw, plain.key, { model: 'oa', messages: userTurn, max_tokens: 10 });
    const withFunctions = await account();
    await postChat(gw, withFunctions.key, { model: 'oa', messages: userTurn, max_tokens: 10, functions });
    const [a, b] = [await onlyItem(plain), await onlyItem(withFunctions)];
    expect(b.estimatedTokens! - a.estimatedTokens!).toBeGreaterThanOrEqual(o200kCount(JSON.stringify(functions)));
  });

  it('holds embeddings by cl100k_base, as OpenAI counts them (o200k × 1.25 fell short on Gujarati)', async () => {
    const text = 'ગુજરાતી ભાષા ભારતના ગુજરાત રાજ્યની મુખ્ય ભાષા છે અને તે ઇન્ડો-આર્યન ભાષા પરિવારની સભ્ય છે. '.repeat(20);
    const billed = cl100kCount(text);
    expect(Math.ceil(o200kCount(text) * 1.25) + 1).toBeLessThan(billed);
    plan.embeddingTokens = billed;
    const acct = await account();
    expect((await post('/embeddings', acct.key, { model: 'emb', input: text })).status).toBe(200);
    const item = await onlyItem(acct);
    expect(item.estimatedTokens).toBe(billed);
    expect(item.promptTokens).toBe(billed);
    expect(item.unchargedMicroUsd ?? 0).toBe(0);
    expect(item.amountMicroUsd).toBe(-micro(billed * 20));
  });
});
