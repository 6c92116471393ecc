import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { randomBytes } from 'node:crypto';
import type { CatalogFile } from '../../lambda/catalog';
import { sse, type SseFrame } from '../providers/anthropic/transcripts';
import { StandIn, type RecordedRequest } from '../providers/stand-in';
import { books, expectBooksBalance } from '../reliability/support';
import { closedPort, codexExec, completedItems, runClaude } from '../support/agents';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * The coding agents on the tiers the design sells (Free 10 RPM / 20,000 TPM, Starter 60 /
 * 100,000, Pro 300 / 500,000), against scripted loopback upstreams: output limits fitted to what
 * the minute has left, so a tool loop runs without a 429 wait while the minute has tokens, and a
 * request that can never fit refused at once with a 4xx no client retries.
 */
const openai = new StandIn('http1');
const anthropic = new StandIn('http1');
let gw: TestGateway;
let catalogFile: CatalogFile;
let origin: string;
let root: string;
let deadProxy: string;

const TIERS = {
  free: { rpm: 10, tpm: 20_000 },
  starter: { rpm: 60, tpm: 100_000 },
  pro: { rpm: 300, tpm: 500_000 },
};
/** Tool round trips each scripted upstream asks for before it answers in words. */
const TOOL_CALLS = 3;
let toolCalls = TOOL_CALLS;

const json = (r: RecordedRequest) => JSON.parse(r.body.toString('utf8'));
/** What a provider would bill for the prompt: about a token per four bytes of the request. */
const promptTokensOf = (r: RecordedRequest) => Math.round(r.body.length / 4);

/** An OpenAI-compatible model that runs the agent's shell tool TOOL_CALLS times, then answers. */
function openAiAgentTurn(request: RecordedRequest) {
  const body = json(request);
  const done = body.messages.filter((m: { role: string }) => m.role === 'tool').length;
  const base = { id: `chatcmpl-agent-${done}`, object: 'chat.completion.chunk', created: 1735689600, model: body.model };
  const chunk = (delta: object, finish: string | null = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const names: string[] = (body.tools ?? []).map((t: { function: { name: string } }) => t.function.name);
  const tool = names.includes('exec_command') ? 'exec_command' : names[0];
  const calling = tool && done < toolCalls;
  const chunks = calling
    ? [
        chunk({ role: 'assistant', content: null }),
        chunk({ tool_calls: [{ index: 0, id: `call_step_${done}`, type: 'function', function: { name: tool, arguments: '' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: JSON.stringify({ cmd: `echo itapi-step-${done}` }) } }] }),
        chunk({}, 'tool_calls'),
      ]
    : [chunk({ role: 'assistant', content: '' }), chunk({ content: 'All steps ran.' }), chunk({}, 'stop')];
  const prompt = promptTokensOf(request);
  const completion = calling ? 30 : 6;
  const usage = { ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } };
  return { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: [...chunks, usage].map((c) => `data: ${JSON.stringify(c)}\n\n`).concat('data: [DONE]\n\n') };
}

/** An Anthropic model that runs Bash TOOL_CALLS times, then answers. */
function anthropicAgentTurn(request: RecordedRequest) {
  const body = json(request);
  const results = body.messages.flatMap((m: { content: unknown }) => (Array.isArray(m.content) ? m.content : [])).filter((b: { type: string }) => b.type === 'tool_result').length;
  const calling = results < TOOL_CALLS;
  const start: SseFrame = [
    'message_start',
    { type: 'message_start', message: { id: `msg_agent_${results}`, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: promptTokensOf(request), output_tokens: 1 } } },
  ];
  const block: SseFrame[] = calling
    ? [
        ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: `toolu_step_${results}`, name: 'Bash', input: {} } }],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify({ command: `echo itapi-step-${results}`, description: 'print a step' }) } }],
      ]
    : [
        ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'All three steps ran.' } }],
      ];
  const frames: SseFrame[] = [
    start,
    ...block,
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: calling ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: calling ? 40 : 6 } }],
    ['message_stop', { type: 'message_stop' }],
  ];
  return { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(frames) };
}

/** Statuses the gateway answered, from its access log: a 429 anywhere means an agent waited. */
function statusesSince(mark: number): number[] {
  return gw.logs
    .slice(mark)
    .map((line) => JSON.parse(line) as { event: string; status?: number; path?: string })
    .filter((l) => l.event === 'request' && l.path !== '/')
    .map((l) => l.status!);
}

beforeAll(async () => {
  const [openaiUrl, anthropicUrl] = await Promise.all([openai.start(), anthropic.start()]);
  openai.handler = openAiAgentTurn;
  anthropic.handler = anthropicAgentTurn;
  catalogFile = {
    models: {
      // A coding model with 128k of output: more than a Starter minute holds.
      'agent-128k': {
        owned_by: 'openai',
        pricing: { input_per_mtok: 1.25, output_per_mtok: 10 },
        context_window: 400_000,
        max_output_tokens: 128_000,
        routes: [{ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'agent-upstream' }],
      },
      'claude-agent': {
        owned_by: 'anthropic',
        pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 },
        context_window: 200_000,
        max_output_tokens: 32_000,
        routes: [{ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-agent-upstream' }],
      },
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalogFile) });
  origin = gw.baseUrl.replace(/\/v1$/, '');
  root = mkdtempSync(join(tmpdir(), 'itapi-agents-'));
  deadProxy = `http://127.0.0.1:${await closedPort()}`;
});

afterAll(async () => {
  await gw.stop();
  await Promise.all([openai.stop(), anthropic.stop()]);
  rmSync(root, { recursive: true, force: true });
});

// Codex's turns weigh about 7,000 prompt tokens each: Free's 20,000 a minute holds two of them.
describe.each([
  { tier: 'free', limits: TIERS.free, calls: 1 },
  { tier: 'starter', limits: TIERS.starter, calls: TOOL_CALLS },
  { tier: 'pro', limits: TIERS.pro, calls: TOOL_CALLS },
])('codex exec on a $tier-like account, a 128k-output model', ({ limits, calls }) => {
  it(`runs its tool calls (${calls}) to the answer in well under a minute, with no 429 wait, each turn's output fitted to what the minute has left`, async () => {
    toolCalls = calls;
    const acct = await createAccount(gw, { tier: 'enterprise', ...limits, creditsMicroUsd: 50_000_000 });
    const before = openai.requests.length;
    const mark = gw.logs.length;
    const run = await codexExec({ baseUrl: gw.baseUrl, key: acct.key, model: 'agent-128k', prompt: 'run the three steps', root, deadProxy });
    const diagnostics = `exit ${run.code}\n${run.stderr.slice(-1500)}\n${JSON.stringify(run.events).slice(-1500)}\nsent: ${openai.requests.slice(before).map(promptTokensOf)} gateway: ${statusesSince(mark)}`;
    if (run.code !== 0) throw new Error(diagnostics);
    expect(run.elapsedMs).toBeLessThan(30_000);
    expect(completedItems(run, 'command_execution').map((c) => c.command.match(/itapi-step-\d/)?.[0])).toEqual(Array.from({ length: calls }, (_, i) => `itapi-step-${i}`));
    expect(completedItems(run, 'agent_message').at(-1)?.text).toBe('All steps ran.');
    expect(statusesSince(mark).filter((s) => s !== 200)).toEqual([]);

    const sent = openai.requests.slice(before).map(json);
    expect(sent).toHaveLength(calls + 1);
    for (const body of sent) {
      // Codex names no output limit: the gateway sends one that fits the minute, never the model's 128,000 on a smaller tier.
      expect(body.max_tokens).toBeGreaterThanOrEqual(1_024);
      expect(body.max_tokens).toBeLessThanOrEqual(Math.min(128_000, limits.tpm));
    }
    const b = await books(gw, acct.accountId);
    expect(b.requests.map((r) => r.status)).toEqual(Array(calls + 1).fill('completed'));
    expectBooksBalance(b);
  }, 60_000);
});

describe('claude -p (max_tokens 32000) on the tiers', () => {
  it(`runs ${TOOL_CALLS} Bash round trips on a Starter-like account without a 429 wait`, async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', ...TIERS.starter, creditsMicroUsd: 50_000_000 });
    const before = anthropic.requests.length;
    const mark = gw.logs.length;
    const run = await runClaude({
      origin,
      key: acct.key,
      model: 'claude-agent',
      prompt: 'run the three steps',
      env: { CLAUDE_CODE_MAX_OUTPUT_TOKENS: '32000', CLAUDE_CODE_MAX_RETRIES: '0' },
    });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toMatchObject({ subtype: 'success', is_error: false, result: 'All three steps ran.' });
    expect(statusesSince(mark).filter((s) => s !== 200)).toEqual([]);
    const sent = anthropic.requests.slice(before).map(json);
    expect(sent).toHaveLength(TOOL_CALLS + 1);
    // The first turn gets the 32,000 it asked for; later ones what the minute has left, never below the floor.
    expect(sent[0].max_tokens).toBe(32_000);
    for (const body of sent) expect(body.max_tokens).toBeGreaterThanOrEqual(1_024);
    expectBooksBalance(await books(gw, acct.accountId));
  }, 60_000);

  it('fails at once on a Free-like account, whose 20,000 TPM its prompt alone exceeds: a 400 naming the limit, not retried, upstream never called', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', ...TIERS.free, creditsMicroUsd: 50_000_000 });
    const before = anthropic.requests.length;
    const mark = gw.logs.length;
    // Claude Code's own retry policy, as users have it (it retries 429 and 5xx, silently).
    const run = await runClaude({ origin, key: acct.key, model: 'claude-agent', prompt: 'run the three steps', env: { CLAUDE_CODE_MAX_OUTPUT_TOKENS: '32000' } });
    expect(run.elapsedMs).toBeLessThan(20_000);
    expect(run.code).not.toBe(0);
    const output = run.stdout + run.stderr;
    expect(output).toMatch(/limit of the account is 20000 tokens per minute/);
    expect(anthropic.requests.length).toBe(before);
    const statuses = statusesSince(mark);
    expect(statuses).toEqual([400]);
  }, 60_000);
});

/** OpenAI's duration form for a per-minute limit: never above a minute. */
const WITHIN_A_MINUTE = /^(\d{1,3}ms|([1-5]?\d)(\.\d+)?s|1m0s)$/;
const RATE_HEADERS = ['limit', 'remaining', 'reset'].flatMap((p) => ['requests', 'tokens'].map((k) => `x-ratelimit-${p}-${k}`));

describe('what every answer tells', () => {
  const post = (path: string, key: string, body: object, headers: Record<string, string> = {}) =>
    fetch(`${gw.baseUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('x-itapi-output-limit on chat, responses and messages whenever the limit sent upstream is not the client’s own', async () => {
    toolCalls = 0;
    anthropic.handler = anthropicAgentTurn;
    const acct = await createAccount(gw, { tier: 'enterprise', ...TIERS.starter, creditsMicroUsd: 50_000_000 });
    const messages = [{ role: 'user', content: 'hello' }];
    // Streams, as agents ask (the scripted upstreams speak SSE only).
    const chat = await post('/chat/completions', acct.key, { model: 'agent-128k', messages, stream: true });
    expect(chat.status).toBe(200);
    const sentChat = openai.lastJson<{ max_tokens: number }>().max_tokens;
    expect(sentChat).toBeLessThan(100_000);
    expect(chat.headers.get('x-itapi-output-limit')).toBe(String(sentChat));
    const own = await post('/chat/completions', acct.key, { model: 'agent-128k', messages, max_tokens: 50, stream: true });
    expect(own.headers.get('x-itapi-output-limit')).toBeNull();
    const responses = await post('/responses', acct.key, { model: 'agent-128k', input: 'hello', stream: true });
    expect(responses.status).toBe(200);
    expect(Number(responses.headers.get('x-itapi-output-limit'))).toBe(openai.lastJson<{ max_tokens: number }>().max_tokens);
    // Above the model's 32,000: clamped, and told.
    const message = await post('/messages', acct.key, { model: 'claude-agent', max_tokens: 64_000, messages, stream: true }, { 'anthropic-version': '2023-06-01' });
    expect(message.status).toBe(200);
    expect(message.headers.get('x-itapi-output-limit')).toBe('32000');
    expect(anthropic.lastJson<{ max_tokens: number }>().max_tokens).toBe(32_000);
    for (const res of [chat, own, responses, message]) for (const name of RATE_HEADERS) expect(res.headers.get(name)).not.toBeNull();
    await Promise.all([chat, own, responses, message].map((r) => r.text()));
  });

  it('refuses a request that can never fit with 400 (Anthropic’s shape on /v1/messages), no retry-after, and the SDK does not retry it', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', ...TIERS.free, creditsMicroUsd: 50_000_000 });
    const huge = 'lorem ipsum dolor sit amet '.repeat(6_000);
    const upstreamBefore = openai.requests.length + anthropic.requests.length;
    const mark = gw.logs.length;
    const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 3 });
    const err = (await client.chat.completions.create({ model: 'agent-128k', messages: [{ role: 'user', content: huge }] }).catch((e) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err.status).toBe(400);
    expect(err.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    expect(err.message).toMatch(/limit of the account is 20000 tokens per minute/);
    expect(err.headers?.get('retry-after')).toBeNull();
    expect(statusesSince(mark)).toEqual([400]);

    const res = await post('/messages', acct.key, { model: 'claude-agent', max_tokens: 32_000, messages: [{ role: 'user', content: huge }] }, { 'anthropic-version': '2023-06-01' });
    expect(res.status).toBe(400);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(/20000 tokens per minute/) } });
    expect(openai.requests.length + anthropic.requests.length).toBe(upstreamBefore);
  });

  it('tells all six x-ratelimit-* headers from a restarted instance’s first answer (GET /v1/models), as the minute stands, every reset within a minute', async () => {
    const suffix = randomBytes(6).toString('hex');
    const tables = { keys: `tier-keys-${suffix}`, tiers: `tier-tiers-${suffix}`, accounts: `tier-accounts-${suffix}`, usage: `tier-usage-${suffix}`, holds: `tier-holds-${suffix}`, sessions: `tier-sessions-${suffix}`, responses: `tier-responses-${suffix}`, rollups: `tier-rollups-${suffix}` };
    const first = await startTestGateway({ catalog: catalogOf(catalogFile), tables });
    const acct = await createAccount(first, { tier: 'starter', creditsMicroUsd: 50_000_000 });
    const used = await fetch(`${first.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'agent-128k', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2_000, stream: true }),
    });
    expect(used.status).toBe(200);
    await used.text();
    await first.gateway.background.drain();
    await first.stop();
    // A new instance on the same tables: nothing cached, not even the tiers.
    const restarted = await startTestGateway({ catalog: catalogOf(catalogFile), tables });
    try {
      const res = await fetch(`${restarted.baseUrl}/models`, { headers: { authorization: `Bearer ${acct.key}` } });
      expect(res.status).toBe(200);
      await res.text();
      for (const name of RATE_HEADERS) expect(res.headers.get(name)).not.toBeNull();
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('60');
      expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('100000');
      expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('59');
      expect(Number(res.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(100_000);
      expect(res.headers.get('x-ratelimit-reset-requests')).toMatch(WITHIN_A_MINUTE);
      expect(res.headers.get('x-ratelimit-reset-tokens')).toMatch(WITHIN_A_MINUTE);
      const admin = await fetch(`${restarted.adminUrl}/accounts/${acct.accountId}`, { headers: { authorization: `Bearer ${restarted.adminToken}` } });
      const usage = (await admin.json()).usage_this_minute;
      expect(usage.reset_requests).toMatch(WITHIN_A_MINUTE);
      expect(usage.reset_tokens).toMatch(WITHIN_A_MINUTE);
    } finally {
      await restarted.stop();
    }
  });
});
