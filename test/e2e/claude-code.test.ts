import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CatalogFile } from '../../lambda/catalog';
import { books, expectBooksBalance } from '../reliability/support';
import { runClaude as runAgent } from '../support/agents';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { sse, type SseFrame } from '../providers/anthropic/transcripts';
import { StandIn, type RecordedRequest } from '../providers/stand-in';

/**
 * Claude Code (`@anthropic-ai/claude-code` 2.1.197, the version npm installs on Node 20) against
 * the gateway, offline: `claude -p` with ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN, one turn with
 * a Bash tool round trip, on an Anthropic route and on an OpenAI-compatible route. Then the exact
 * requests it sent in a recorded session (fixtures/claude-code-2.1.197-requests.json, auth
 * redacted) replayed as they were, including the ones `-p` with nonessential traffic disabled skips
 * (model discovery, the session title).
 */
const anthropic = new StandIn('http1');
const openai = new StandIn('http1');
let gw: TestGateway;
let acct: TestAccount;
let origin: string;

const RECORDED = JSON.parse(readFileSync(join(__dirname, 'fixtures/claude-code-2.1.197-requests.json'), 'utf8')) as {
  requests: Array<{ method: string; url: string; headers: Record<string, string>; body: any }>;
  gpt_model_turn1: { method: string; url: string; headers: Record<string, string>; body: any };
};


beforeAll(async () => {
  const anthropicUrl = await anthropic.start();
  const openaiUrl = await openai.start();
  const claude = { owned_by: 'anthropic', pricing: { input_per_mtok: 5, output_per_mtok: 25, cached_input_per_mtok: 0.5 }, context_window: 200000, max_output_tokens: 32000 };
  const gpt = { owned_by: 'openai', pricing: { input_per_mtok: 1.25, output_per_mtok: 10 }, context_window: 400000, max_output_tokens: 16384 };
  const catalog: CatalogFile = {
    models: {
      // The id Claude Code 2.1.197 sends by default, so the recording replays unchanged.
      'claude-opus-4-8': { ...claude, routes: [{ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-opus-4-8-upstream' }] },
      'gpt-test': { ...gpt, routes: [{ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'gpt-upstream' }] },
      'claude-mock': { ...claude, routes: [{ provider: 'mock', model: 'claude-mock' }] },
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog) });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  origin = gw.baseUrl.replace(/\/v1$/, '');
});

afterAll(async () => {
  await gw.stop();
  await anthropic.stop();
  await openai.stop();
});

const json = (r: RecordedRequest) => JSON.parse(r.body.toString('utf8'));

/** Anthropic's answer to a turn: thinking and a Bash call first; plain text once the tool result is in. */
function anthropicTurn(request: RecordedRequest) {
  const body = json(request);
  const last = body.messages.at(-1);
  const hasResult = Array.isArray(last.content) && last.content.some((b: { type: string }) => b.type === 'tool_result');
  const start: SseFrame = [
    'message_start',
    { type: 'message_start', message: { id: 'msg_cc', type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 900, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 } } },
  ];
  const frames: SseFrame[] = hasResult
    ? [
        start,
        ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'OK' } }],
        ['content_block_stop', { type: 'content_block_stop', index: 0 }],
        ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 2 } }],
        ['message_stop', { type: 'message_stop' }],
      ]
    : [
        start,
        ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'I should run it.' } }],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBCkYIBxgCKkDsig' } }],
        ['content_block_stop', { type: 'content_block_stop', index: 0 }],
        ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_01ABC', name: 'Bash', input: {} } }],
        ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"command": "echo hi",' } }],
        ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' "description": "print hi"}' } }],
        ['content_block_stop', { type: 'content_block_stop', index: 1 }],
        ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 40 } }],
        ['message_stop', { type: 'message_stop' }],
      ];
  return { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(frames) };
}

/** An OpenAI-compatible upstream's answer: a Bash tool call first; text once a tool message is in. */
function openAiTurn(request: RecordedRequest) {
  const body = json(request);
  const base = { id: 'chatcmpl-cc', object: 'chat.completion.chunk', created: 1735689600, model: body.model };
  const chunk = (delta: object, finish: string | null = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const answered = body.messages.some((m: { role: string }) => m.role === 'tool');
  const chunks = answered
    ? [chunk({ role: 'assistant', content: '' }), chunk({ content: 'OK' }), chunk({}, 'stop')]
    : [
        chunk({ role: 'assistant', content: null }),
        chunk({ tool_calls: [{ index: 0, id: 'call_bash1', type: 'function', function: { name: 'Bash', arguments: '' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"command":"echo hi","description":"print hi"}' } }] }),
        chunk({}, 'tool_calls'),
      ];
  const usage = { ...base, choices: [], usage: { prompt_tokens: 900, completion_tokens: answered ? 2 : 30, total_tokens: answered ? 902 : 930 } };
  const parts = [...chunks, usage].map((c) => `data: ${JSON.stringify(c)}\n\n`).concat('data: [DONE]\n\n');
  return { status: 200, headers: { 'content-type': 'text/event-stream' }, parts };
}

/** `claude -p` as a user runs it against the gateway, with nothing but the gateway reachable. */
function runClaude(model: string, prompt: string) {
  return runAgent({ origin, key: acct.key, model, prompt, env: { CLAUDE_CODE_MAX_RETRIES: '0' } });
}

describe('claude -p against the gateway', () => {
  it.each([
    { route: 'an Anthropic route', model: 'claude-opus-4-8', upstream: () => anthropic, serve: () => (anthropic.handler = anthropicTurn) },
    { route: 'an OpenAI-compatible route', model: 'gpt-test', upstream: () => openai, serve: () => (openai.handler = openAiTurn) },
  ])('runs a turn with a Bash tool round trip on $route', async ({ model, upstream, serve }) => {
    serve();
    const before = upstream().requests.length;
    const ledgerBefore = (await books(gw, acct.accountId)).requests.length;
    const run = await runClaude(model, 'run echo hi');
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ type: 'result', subtype: 'success', is_error: false, result: 'OK' });

    const sent = upstream().requests.slice(before);
    expect(sent).toHaveLength(2);
    const followUp = json(sent[1]);
    if (upstream() === anthropic) {
      // The tool really ran, and its output came back as a tool_result for the same id.
      const last = followUp.messages.at(-1);
      expect(last.content[0]).toMatchObject({ type: 'tool_result', tool_use_id: 'toolu_01ABC', content: expect.stringContaining('hi') });
      expect(followUp.messages.at(-2).content[0]).toMatchObject({ type: 'thinking', signature: 'EqQBCkYIBxgCKkDsig' });
      expect(sent[1].headers['anthropic-beta']).toContain('claude-code-20250219');
    } else {
      expect(followUp.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_bash1', content: expect.stringContaining('hi') });
      for (const field of ['thinking', 'context_management', 'output_config', 'metadata', 'system']) expect(followUp).not.toHaveProperty(field);
    }

    const after = await books(gw, acct.accountId);
    expect(after.requests.length).toBe(ledgerBefore + 2);
    expect(after.requests.slice(-2).map((r) => r.status)).toEqual(['completed', 'completed']);
    expectBooksBalance(after);
  }, 60_000);
});

describe('claude -p against the mock provider (npm start without provider keys)', () => {
  it('ends a turn: the mock calls the tool the prompt names, once, then answers in words', async () => {
    const ledgerBefore = (await books(gw, acct.accountId)).requests.length;
    const run = await runClaude('claude-mock', 'use Bash to run echo hi');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ subtype: 'success', is_error: false, result: expect.stringMatching(/^This is a mock answer from itapi to: /) });
    const after = await books(gw, acct.accountId);
    expect(after.requests.slice(ledgerBefore).map((r) => `${r.route} ${r.status}`)).toEqual(['mock:claude-mock completed', 'mock:claude-mock completed']);
    expectBooksBalance(after);
  }, 60_000);
});

describe('the requests Claude Code 2.1.197 sent in a recorded session, replayed', () => {
  const replay = (recorded: { method: string; url: string; headers: Record<string, string>; body: any }) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(recorded.headers)) {
      if (['host', 'content-length', 'connection', 'accept-encoding'].includes(name)) continue;
      headers[name] = name === 'authorization' ? `Bearer ${acct.key}` : value;
    }
    return fetch(`${origin}${recorded.url}`, {
      method: recorded.method,
      headers,
      body: recorded.method === 'POST' ? JSON.stringify(recorded.body) : undefined,
    });
  };

  it('answers the pre-warm HEAD / without a key', async () => {
    const [head] = RECORDED.requests;
    expect(head).toMatchObject({ method: 'HEAD', url: '/' });
    expect((await replay(head)).status).toBe(200);
  });

  it('serves model discovery (GET /v1/models?limit=1000 with anthropic-version) in the shape Claude Code validates', async () => {
    const res = await replay(RECORDED.requests[1]);
    expect(res.status).toBe(200);
    const page = await res.json();
    expect(page.data.map((m: { id: string }) => m.id)).toContain('claude-opus-4-8');
    for (const m of page.data) expect(m).toEqual({ type: 'model', id: expect.any(String), display_name: expect.any(String), created_at: expect.any(String) });
    expect(page.has_more).toBe(false);
  });

  it.each([
    ['the session title (structured output, thinking disabled)', 2],
    ['the turn (25 tools, adaptive thinking, context_management, a system message mid-conversation)', 3],
    ['the follow-up with a thinking block and a tool_result', 4],
  ])('passes %s through to the Anthropic route as sent, max_tokens clamped', async (_, n) => {
    anthropic.handler = anthropicTurn;
    const recorded = RECORDED.requests[n];
    const res = await replay(recorded);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.trim().split('\n\n').at(-1)).toBe('event: message_stop\ndata: {"type":"message_stop"}');
    const sent = anthropic.requests.at(-1)!;
    expect(sent.path).toBe('/v1/messages?beta=true');
    expect(sent.headers['anthropic-beta']).toBe(recorded.headers['anthropic-beta']);
    expect(sent.headers['anthropic-version']).toBe('2023-06-01');
    expect(json(sent)).toEqual({ ...recorded.body, model: 'claude-opus-4-8-upstream', max_tokens: 32000 });
  });

  it('translates the turn sent for a non-Claude model into a Chat Completions request with no Claude-only field', async () => {
    openai.handler = openAiTurn;
    const recorded = RECORDED.gpt_model_turn1;
    expect(recorded.body.tools).toHaveLength(24);
    const res = await replay(recorded);
    expect(res.status).toBe(200);
    const events = (await res.text())
      .trim()
      .split('\n\n')
      .map((f) => JSON.parse(f.split('\n')[1].slice('data: '.length)));
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(events[2].content_block).toEqual({ type: 'tool_use', id: 'call_bash1', name: 'Bash', input: {} });
    expect(events.at(-2).delta.stop_reason).toBe('tool_use');

    const sent = openai.lastJson<Record<string, any>>();
    expect(Object.keys(sent).sort()).toEqual(['max_tokens', 'messages', 'model', 'stream', 'stream_options', 'tools'].sort());
    expect(sent.max_tokens).toBe(16384);
    expect(sent.tools).toHaveLength(24);
    expect(sent.tools.every((t: any) => t.type === 'function' && t.function.parameters && !('cache_control' in t.function))).toBe(true);
    expect(sent.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user', 'system']);
    expect(JSON.stringify(sent.messages)).not.toContain('cache_control');
  });
});
