import Anthropic from '@anthropic-ai/sdk';
import type { CatalogFile } from '../../lambda/catalog';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { completionBody, streamEvents } from '../support/upstream';
import { books, expectBooksBalance, sleep } from '../reliability/support';
import { OVERLOADED_FIRST, OVERLOADED_MID_STREAM, sse, TEXT_MESSAGE, TEXT_STREAM, TOOL_STREAM, type SseFrame } from '../providers/anthropic/transcripts';
import { StandIn } from '../providers/stand-in';
import { eventStreamReply, jsonReply, route as bedrockRoute, testBedrockProvider } from '../providers/bedrock/stand-in';
import { TOOL_RESPONSE as BEDROCK_TOOL_RESPONSE, TOOL_STREAM as BEDROCK_TOOL_STREAM } from '../providers/bedrock/transcripts';
import { defaultProviders } from '../../lambda/providers';
import { openAiValidator } from '../support/openai-schema';

/**
 * The official Anthropic SDK (`@anthropic-ai/sdk`) against `/v1/messages`, on an Anthropic route
 * (the client's request passed through to a stand-in speaking Anthropic's wire) and on an
 * OpenAI-compatible route (translated both ways), through the whole gateway.
 */
const anthropic = new StandIn('http1');
const openai = new StandIn('http1');
const bedrock = new StandIn('h2c');
let gw: TestGateway;
let acct: TestAccount;
let origin: string;
let client: Anthropic;
let anthropicBase: string;

const UPSTREAM_ANTHROPIC_KEY = 'sk-ant-upstream-test';
const CLAUDE = 'claude-test';
const GPT = 'gpt-test';

beforeAll(async () => {
  const anthropicUrl = await anthropic.start();
  anthropicBase = anthropicUrl;
  const openaiUrl = await openai.start();
  const bedrockUrl = await bedrock.start();
  const claude = { owned_by: 'anthropic', pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }, context_window: 200000, max_output_tokens: 8192 };
  const catalog: CatalogFile = {
    models: {
      [CLAUDE]: { ...claude, routes: [{ provider: 'anthropic', base_url: anthropicUrl, secret: 'anthropic', model: 'claude-upstream-id' }] },
      [GPT]: {
        owned_by: 'openai',
        pricing: { input_per_mtok: 2.5, output_per_mtok: 10 },
        context_window: 128000,
        max_output_tokens: 4096,
        routes: [{ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'gpt-upstream-id' }],
      },
      'claude-on-bedrock': { ...claude, routes: [{ provider: 'bedrock', base_url: bedrockUrl, model: 'anthropic.claude-sonnet-test-v1:0', region: 'us-east-1' }] },
      'mock-model': { ...claude, routes: [{ provider: 'mock', model: 'mock-model' }] },
      'claude-with-fallback': {
        ...claude,
        routes: [
          { provider: 'anthropic', base_url: anthropicUrl, secret: 'anthropic', model: 'claude-upstream-id' },
          { provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'gpt-upstream-id' },
        ],
      },
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog), providers: { ...defaultProviders(), bedrock: testBedrockProvider() }, env: { ITAPI_ADMIN_TOKEN: 'test-admin-anthropic-sdk', ITAPI_SECRET_ANTHROPIC: UPSTREAM_ANTHROPIC_KEY } });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  origin = gw.baseUrl.replace(/\/v1$/, '');
  client = new Anthropic({ baseURL: origin, apiKey: acct.key, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
  await anthropic.stop();
  await openai.stop();
  await bedrock.stop();
});

const serveAnthropicStream = (frames: SseFrame[], gapMs = 0) => {
  anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(frames), gapMs });
};
const serveOpenAi = (reply: { json?: unknown; sse?: string[]; gapMs?: number }) => {
  openai.handler = () =>
    reply.sse
      ? { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: reply.sse, gapMs: reply.gapMs }
      : { status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(reply.json)] };
};

/** OpenAI chunks: some text, then one tool call whose arguments come in two pieces, then usage. */
function openAiToolStream(model: string): string[] {
  const base = { id: 'chatcmpl-tools', object: 'chat.completion.chunk', created: 1735689600, model };
  const chunk = (delta: object, finish: string | null = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  return [
    chunk({ role: 'assistant', content: '' }),
    chunk({ content: 'Let me look.' }),
    chunk({ tool_calls: [{ index: 0, id: 'call_abc123', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
    chunk({ tool_calls: [{ index: 1, id: 'call_def456', type: 'function', function: { name: 'get_time', arguments: '{}' } }] }),
    chunk({}, 'tool_calls'),
    { ...base, choices: [], usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150, prompt_tokens_details: { cached_tokens: 20 } } },
  ]
    .map((e) => `data: ${JSON.stringify(e)}\n\n`)
    .concat('data: [DONE]\n\n');
}

const TOOLS: Anthropic.Tool[] = [
  { name: 'get_weather', description: 'Weather in a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
  { name: 'get_time', input_schema: { type: 'object', properties: {} } },
];

async function ledgerEntry(requestId: string) {
  await gw.gateway.background.drain();
  const entries = await gw.gateway.stores.usage.requests(acct.accountId, 0, Date.now() + 1000);
  const entry = entries.find((e) => e.id === requestId);
  if (!entry) throw new Error(`no ledger entry for ${requestId}`);
  return entry;
}

/** Checks the sequence Anthropic's SDK relies on: blocks 0, 1, … opened in order, one at a time, each closed. */
function expectWellFormedEvents(events: Array<{ type: string; index?: number }>): void {
  expect(events[0].type).toBe('message_start');
  expect(events.at(-1)!.type).toBe('message_stop');
  expect(events.at(-2)!.type).toBe('message_delta');
  let open: number | undefined;
  let next = 0;
  for (const e of events) {
    if (e.type === 'content_block_start') {
      expect(open).toBeUndefined();
      expect(e.index).toBe(next++);
      open = e.index;
    } else if (e.type === 'content_block_delta') {
      expect(e.index).toBe(open);
    } else if (e.type === 'content_block_stop') {
      expect(e.index).toBe(open);
      open = undefined;
    }
  }
  expect(open).toBeUndefined();
}

describe('on an Anthropic route (passed through)', () => {
  it('creates a message: the SDK gets Anthropic’s answer, the upstream gets the client’s request with the route’s model and a clamped max_tokens', async () => {
    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(TEXT_MESSAGE)] });
    const { data: message, response } = await client.messages
      .create({
        model: CLAUDE,
        max_tokens: 20000,
        system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
        messages: [{ role: 'user', content: 'Hello' }],
        metadata: { user_id: 'u-1' },
        top_k: 5,
      } as Anthropic.MessageCreateParamsNonStreaming)
      .withResponse();
    expect(message.content).toEqual(TEXT_MESSAGE.content);
    expect(message.model).toBe(CLAUDE);
    expect(message.usage.input_tokens).toBe(2095);
    expect(response.headers.get('x-itapi-route')).toBe('anthropic:claude-upstream-id');
    expect(response.headers.get('x-request-id')).toMatch(/^req_/);
    expect(response.headers.get('x-ratelimit-limit-requests')).toBeTruthy();

    const sent = anthropic.requests.at(-1)!;
    expect(sent.path).toBe('/v1/messages');
    expect(sent.headers['x-api-key']).toBe(UPSTREAM_ANTHROPIC_KEY);
    // The SDK's own anthropic-version, forwarded (Claude Code sends 2023-06-01: the next test).
    expect(sent.headers['anthropic-version']).toMatch(/^\d{4}-\d\d-\d\d$/);
    const body = JSON.parse(sent.body.toString());
    expect(body).toEqual({
      model: 'claude-upstream-id',
      max_tokens: 8192,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: 'Hello' }],
      metadata: { user_id: 'u-1' },
      top_k: 5,
    });

    // Billed from Anthropic's usage: 2095 input at $3, 100 cache writes at $3.75, 1000 cache reads at $0.30, 503 output at $15 per million.
    const entry = await ledgerEntry(response.headers.get('x-request-id')!);
    expect(entry.status).toBe('completed');
    expect(entry.promptTokens).toBe(2095 + 100 + 1000);
    expect(entry.completionTokens).toBe(503);
    // Cache writes at Anthropic's 1.25× input (the catalog prices none), reads at the cached price.
    expect(-entry.amountMicroUsd).toBe(Math.ceil((2095 * 3000 + 100 * 3750 + 1000 * 300 + 503 * 15000) / 1000));
  });

  it('streams tool use event by event; the SDK assembles the blocks and the usage bills the request', async () => {
    serveAnthropicStream(TOOL_STREAM);
    const stream = client.messages.stream({ model: CLAUDE, max_tokens: 1024, tools: TOOLS, messages: [{ role: 'user', content: 'Weather and time in SF?' }] });
    const events: Anthropic.MessageStreamEvent[] = [];
    stream.on('streamEvent', (e) => events.push(e));
    const final = await stream.finalMessage();
    const { response } = await stream.withResponse();
    expectWellFormedEvents(events);
    expect(events.length).toBe(TOOL_STREAM.filter(([type]) => type !== 'ping').length);
    expect(final.model).toBe(CLAUDE);
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content.map((b) => b.type)).toEqual(['text', 'tool_use', 'tool_use']);
    expect(final.content[1]).toMatchObject({ id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: { location: 'San Francisco, CA' } });
    expect(final.usage.output_tokens).toBe(89);
    expect(JSON.parse(anthropic.requests.at(-1)!.body.toString()).stream).toBe(true);

    const entry = await ledgerEntry(response.headers.get('x-request-id')!);
    expect(entry).toMatchObject({ status: 'completed', promptTokens: 472, completionTokens: 89, stream: true });
  });

  it('accepts what Claude Code sends (?beta=true, betas, adaptive thinking, context_management, a system message mid-conversation) and forwards it as is', async () => {
    serveAnthropicStream(TEXT_STREAM);
    const betas = 'claude-code-20250219,context-management-2025-06-27,mid-conversation-system-2026-04-07';
    const res = await fetch(`${origin}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'anthropic-version': '2023-06-01', 'anthropic-beta': betas, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: CLAUDE,
        max_tokens: 64000,
        thinking: { type: 'adaptive' },
        context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
        output_config: { effort: 'high' },
        messages: [
          { role: 'user', content: [{ type: 'text', text: 'say OK', cache_control: { type: 'ephemeral' } }] },
          { role: 'system', content: 'Agent types: …' },
        ],
        stream: true,
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('event: message_stop');
    const sent = anthropic.requests.at(-1)!;
    expect(sent.path).toBe('/v1/messages?beta=true');
    expect(sent.headers['anthropic-beta']).toBe(betas);
    expect(sent.headers['anthropic-version']).toBe('2023-06-01');
    const body = JSON.parse(sent.body.toString());
    expect(body.max_tokens).toBe(8192);
    expect(body.thinking).toEqual({ type: 'adaptive' });
    expect(body.context_management).toEqual({ edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] });
    expect(body.output_config).toEqual({ effort: 'high' });
    expect(body.messages[1]).toEqual({ role: 'system', content: 'Agent types: …' });
  });

  it('lowers a thinking budget that the clamped max_tokens leaves no room for', async () => {
    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(TEXT_MESSAGE)] });
    await client.messages.create({ model: CLAUDE, max_tokens: 20000, thinking: { type: 'enabled', budget_tokens: 10000 }, messages: [{ role: 'user', content: 'Think.' }] });
    const body = JSON.parse(anthropic.requests.at(-1)!.body.toString());
    expect(body.max_tokens).toBe(8192);
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 8191 });
  });

  it('falls through to the next route when Anthropic is overloaded before its first event, translating for it', async () => {
    serveAnthropicStream(OVERLOADED_FIRST);
    serveOpenAi({ sse: streamEvents('gpt-upstream-id', ['Fall', 'back']) });
    const stream = client.messages.stream({ model: 'claude-with-fallback', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const final = await stream.finalMessage();
    const { response } = await stream.withResponse();
    expect(response.headers.get('x-itapi-route')).toBe('openai-compatible:gpt-upstream-id');
    expect(final.content).toEqual([expect.objectContaining({ type: 'text', text: 'Fallback' })]);
    expect(final.model).toBe('claude-with-fallback');
  });
});

describe('on an OpenAI-compatible route (translated)', () => {
  it('creates a message from a chat completion, and sends the upstream only Chat Completions fields', async () => {
    serveOpenAi({ json: completionBody('gpt-upstream-id', 'Hi there', { prompt_tokens: 40, completion_tokens: 3, total_tokens: 43 }) });
    const { data: message, response } = await client.messages
      .create({
        model: GPT,
        max_tokens: 20000,
        system: 'Be brief.',
        stop_sequences: ['END'],
        temperature: 0.5,
        top_k: 3,
        metadata: { user_id: '{"device_id":"abc"}' },
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello', cache_control: { type: 'ephemeral' } }] }],
      } as Anthropic.MessageCreateParamsNonStreaming)
      .withResponse();
    expect(message).toMatchObject({ type: 'message', role: 'assistant', model: GPT, content: [{ type: 'text', text: 'Hi there' }], stop_reason: 'end_turn' });
    expect(message.id).toMatch(/^msg_/);
    expect(message.usage).toMatchObject({ input_tokens: 40, output_tokens: 3 });
    expect(response.headers.get('x-itapi-route')).toBe('openai-compatible:gpt-upstream-id');

    const body = openai.lastJson();
    expect(body).toEqual({
      model: 'gpt-upstream-id',
      messages: [
        { role: 'system', content: 'Be brief.' },
        // One plain text block goes as a string, as most clients write it (the Chat codec).
        { role: 'user', content: 'Hello' },
      ],
      // Not api.openai.com: the limit goes in the field every OpenAI-compatible server honours.
      max_tokens: 4096,
      temperature: 0.5,
      stop: ['END'],
      stream: false,
    });
  });

  it('streams text as Anthropic’s full event sequence, usage in message_delta', async () => {
    serveOpenAi({ sse: streamEvents('gpt-upstream-id', ['Hel', 'lo', '!'], { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 }) });
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const frames = (await res.text()).split('\n\n').filter(Boolean);
    const events = frames.map((f) => {
      const [eventLine, dataLine] = f.split('\n');
      const data = JSON.parse(dataLine.slice('data: '.length));
      expect(eventLine).toBe(`event: ${data.type}`);
      return data;
    });
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expectWellFormedEvents(events.filter((e) => e.type !== 'ping'));
    expect(events[0].message).toMatchObject({ type: 'message', role: 'assistant', model: GPT, content: [], stop_reason: null });
    expect(events.at(-2)).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { input_tokens: 12, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
  });

  it('streams tool calls as tool_use blocks with input_json_delta, and takes the tool results back as tool messages with the same ids', async () => {
    serveOpenAi({ sse: openAiToolStream('gpt-upstream-id') });
    const stream = client.messages.stream({ model: GPT, max_tokens: 200, tools: TOOLS, tool_choice: { type: 'auto', disable_parallel_tool_use: false }, messages: [{ role: 'user', content: 'Weather in Paris, and the time?' }] });
    const events: Anthropic.MessageStreamEvent[] = [];
    stream.on('streamEvent', (e) => events.push(e));
    const final = await stream.finalMessage();
    expectWellFormedEvents(events.filter((e) => e.type !== ('ping' as string)));
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content).toEqual([
      expect.objectContaining({ type: 'text', text: 'Let me look.' }),
      expect.objectContaining({ type: 'tool_use', id: 'call_abc123', name: 'get_weather', input: { city: 'Paris' } }),
      expect.objectContaining({ type: 'tool_use', id: 'call_def456', name: 'get_time', input: {} }),
    ]);
    // Cached prompt tokens are Anthropic's cache reads, left out of input_tokens.
    expect(final.usage).toMatchObject({ input_tokens: 100, cache_read_input_tokens: 20, output_tokens: 30 });
    const toolsSent = openai.lastJson<{ tools: unknown; tool_choice: unknown }>();
    expect(toolsSent.tools).toEqual([
      { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: TOOLS[0].input_schema } },
      { type: 'function', function: { name: 'get_time', parameters: TOOLS[1].input_schema } },
    ]);
    expect(toolsSent.tool_choice).toBe('auto');

    serveOpenAi({ json: completionBody('gpt-upstream-id', 'Sunny, and noon.') });
    const image = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex').toString('base64');
    const answer = await client.messages.create({
      model: GPT,
      max_tokens: 200,
      tools: TOOLS,
      messages: [
        { role: 'user', content: 'Weather in Paris, and the time?' },
        { role: 'assistant', content: final.content },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_abc123', content: 'Sunny' },
            { type: 'tool_result', tool_use_id: 'call_def456', content: [{ type: 'text', text: 'no clock' }], is_error: true },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: image } },
          ],
        },
      ],
    });
    expect(answer.content).toEqual([expect.objectContaining({ type: 'text', text: 'Sunny, and noon.' })]);
    const history = openai.lastJson<{ messages: unknown[] }>().messages;
    expect(history).toEqual([
      { role: 'user', content: 'Weather in Paris, and the time?' },
      {
        role: 'assistant',
        content: 'Let me look.',
        tool_calls: [
          { id: 'call_abc123', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_def456', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_abc123', content: 'Sunny' },
      { role: 'tool', tool_call_id: 'call_def456', content: 'Error: no clock' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${image}` } }] },
    ]);
  });

  it('answers a non-streamed tool call as tool_use blocks', async () => {
    serveOpenAi({
      json: {
        ...completionBody('gpt-upstream-id', ''),
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: 'call_x1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
            logprobs: null,
            finish_reason: 'tool_calls',
          },
        ],
      },
    });
    const message = await client.messages.create({ model: GPT, max_tokens: 100, tools: TOOLS, tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'Oslo?' }] });
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content).toEqual([{ type: 'tool_use', id: 'call_x1', name: 'get_weather', input: { city: 'Oslo' } }]);
    expect(openai.lastJson().tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });
  });

  it('drops Anthropic server tools the route cannot run and names them; refuses a tool_choice that forces one', async () => {
    serveOpenAi({ json: completionBody('gpt-upstream-id', 'ok') });
    const webSearch = { type: 'web_search_20250305', name: 'web_search', max_uses: 2 } as unknown as Anthropic.Tool;
    const { response } = await client.messages.create({ model: GPT, max_tokens: 10, tools: [...TOOLS, webSearch], messages: [{ role: 'user', content: 'x' }] }).withResponse();
    expect(response.headers.get('x-itapi-ignored')).toBe('web_search');
    expect((openai.lastJson().tools as unknown[]).length).toBe(2);

    // A dropped tool's name is the client's: made safe for a header, never a 500 after the answer was billed.
    const hostile = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 10, tools: [...TOOLS, { type: 'web_search_20250305', name: 'evil\r\nset-cookie: x=1', max_uses: 1 }], messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(hostile.status).toBe(200);
    expect(hostile.headers.get('x-itapi-ignored')).toBe('evil__set-cookie:_x_1');
    expect(hostile.headers.get('set-cookie')).toBeNull();

    const calls = openai.requests.length;
    const err = await client.messages.create({ model: GPT, max_tokens: 10, tools: [webSearch], tool_choice: { type: 'tool', name: 'web_search' }, messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('tool_choice') } });
    expect(openai.requests.length).toBe(calls);
  });

  it('maps finish reasons: length → max_tokens', async () => {
    const cut = completionBody('gpt-upstream-id', 'cut', { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 });
    serveOpenAi({ json: { ...cut, choices: [{ index: 0, message: { role: 'assistant', content: 'cut', refusal: null }, logprobs: null, finish_reason: 'length' }] } });
    const message = await client.messages.create({ model: GPT, max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
    expect(message.stop_reason).toBe('max_tokens');
  });
});

describe('on a Bedrock route and on the mock (translated)', () => {
  const SONG: Anthropic.Tool[] = [{ name: 'top_song', input_schema: { type: 'object', properties: { sign: { type: 'string' } } } }];

  it('streams Converse tool uses as tool_use blocks, with the system prompts (also mid-conversation) folded into Converse’s system', async () => {
    bedrockRoute(bedrock, { stream: eventStreamReply(BEDROCK_TOOL_STREAM) });
    const stream = client.messages.stream({
      model: 'claude-on-bedrock',
      max_tokens: 64000,
      system: 'Be brief.',
      tools: SONG,
      thinking: { type: 'adaptive' },
      messages: [
        { role: 'user', content: 'Top songs?' },
        { role: 'system', content: 'Two stations.' },
      ],
    } as unknown as Anthropic.MessageStreamParams);
    const events: Anthropic.MessageStreamEvent[] = [];
    stream.on('streamEvent', (e) => events.push(e));
    const final = await stream.finalMessage();
    expectWellFormedEvents(events.filter((e) => e.type !== ('ping' as string)));
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content).toEqual([
      expect.objectContaining({ type: 'text', text: 'Let me look up both.' }),
      expect.objectContaining({ type: 'tool_use', id: 'tooluse_kZJMlvQmRJ6eAyJE5GIl7Q', name: 'top_song', input: { sign: 'WZPZ' } }),
      expect.objectContaining({ type: 'tool_use', id: 'tooluse_Qa1B2c3D4e5F6g7H8i9J0k', name: 'top_song', input: { sign: 'WKRP' } }),
    ]);
    expect(final.usage).toMatchObject({ input_tokens: 375, output_tokens: 65 });
    const converse = bedrock.lastJson<Record<string, any>>();
    expect(converse.system).toEqual([{ text: 'Be brief.' }, { text: 'Two stations.' }]);
    expect(converse.messages).toEqual([{ role: 'user', content: [{ text: 'Top songs?' }] }]);
    expect(converse.inferenceConfig.maxTokens).toBe(8192);
    expect(JSON.stringify(converse)).not.toMatch(/thinking|adaptive/);
  });

  it('creates a message from Converse', async () => {
    bedrockRoute(bedrock, { converse: jsonReply(BEDROCK_TOOL_RESPONSE) });
    const message = await client.messages.create({ model: 'claude-on-bedrock', max_tokens: 500, tools: SONG, messages: [{ role: 'user', content: 'Top song?' }] });
    expect(message.content).toEqual([
      { type: 'text', text: 'Checking the charts.' },
      { type: 'tool_use', id: 'tooluse_hbTgdi0CSLq_hM4P8csZJA', name: 'top_song', input: { sign: 'WZPZ' } },
    ]);
    expect(message.stop_reason).toBe('tool_use');
  });

  it('runs a tool round trip on the mock provider (what npm start serves without provider keys)', async () => {
    const first = await client.messages.create({ model: 'mock-model', max_tokens: 500, tools: SONG, messages: [{ role: 'user', content: 'Call top_song' }] });
    expect(first.stop_reason).toBe('tool_use');
    const use = first.content.find((b) => b.type === 'tool_use')!;
    expect(use).toMatchObject({ name: 'top_song', input: { sign: 'example' } });
    const second = await client.messages.create({
      model: 'mock-model',
      max_tokens: 500,
      tools: SONG,
      messages: [
        { role: 'user', content: 'Call top_song' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.type === 'tool_use' ? use.id : '', content: 'WZPZ: Hey Jude' }] },
      ],
    });
    expect(second.stop_reason).toBe('end_turn');
    expect(second.content).toEqual([{ type: 'text', text: expect.stringContaining('Hey Jude') }]);
  });
});

describe('errors in Anthropic’s shape', () => {
  const post = (body: unknown, headers: Record<string, string> = { 'x-api-key': acct.key }) =>
    fetch(`${origin}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers }, body: JSON.stringify(body) });
  const expectAnthropicError = async (res: Response, status: number, type: string) => {
    expect(res.status).toBe(status);
    const body = await res.json();
    expect(body).toEqual({ type: 'error', error: { type, message: expect.any(String) }, request_id: expect.stringMatching(/^req_/) });
    expect(res.headers.get('x-request-id')).toBe(body.request_id);
    return body;
  };

  it('401 authentication_error without a key, with a bad key, and the SDK raises AuthenticationError', async () => {
    await expectAnthropicError(await post({ model: CLAUDE, max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }, {}), 401, 'authentication_error');
    await expectAnthropicError(await post({ model: CLAUDE, max_tokens: 1, messages: [] }, { 'x-api-key': 'it_' + 'x'.repeat(40) }), 401, 'authentication_error');
    const err = await new Anthropic({ baseURL: origin, apiKey: 'nope', maxRetries: 0 }).messages.create({ model: CLAUDE, max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(err.requestID).toMatch(/^req_/);
  });

  it('takes the key as Authorization: Bearer (Claude Code’s ANTHROPIC_AUTH_TOKEN, the SDK’s authToken)', async () => {
    const small = { ...TEXT_MESSAGE, usage: { input_tokens: 8, output_tokens: 4 } };
    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(small)] });
    const bearer = new Anthropic({ baseURL: origin, apiKey: null, authToken: acct.key, maxRetries: 0 });
    const message = await bearer.messages.create({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    expect(message.type).toBe('message');
  });

  it('400 invalid_request_error naming the field; the rate-limit headers still come', async () => {
    const res = await post({ model: CLAUDE, messages: [{ role: 'user', content: 'x' }] });
    const body = await expectAnthropicError(res, 400, 'invalid_request_error');
    expect(body.error.message).toBe('max_tokens: Field required');
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBeTruthy();
    const bad = await expectAnthropicError(await post({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/bmp', data: 'x' } }] }] }), 400, 'invalid_request_error');
    expect(bad.error.message).toMatch(/^messages\[0\]\.content\[0\]\.source\.media_type: /);
    await expectAnthropicError(await fetch(`${origin}/v1/messages`, { method: 'POST', headers: { 'x-api-key': acct.key, 'content-type': 'application/json' }, body: '{"model":' }), 400, 'invalid_request_error');
  });

  it('404 not_found_error for an unknown model, 403 permission_error for a model the key may not use', async () => {
    await expectAnthropicError(await post({ model: 'claude-nope', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), 404, 'not_found_error');
    const limited = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, models: [GPT] });
    await expectAnthropicError(await post({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': limited.key }), 403, 'permission_error');
  });

  it('402 billing_error when the balance cannot pay the hold', async () => {
    const poor = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000, creditsMicroUsd: 100 });
    const err = await new Anthropic({ baseURL: origin, apiKey: poor.key, maxRetries: 0 }).messages.create({ model: CLAUDE, max_tokens: 8000, messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err.status).toBe(402);
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'billing_error' } });
    expectBooksBalance(await books(gw, poor.accountId));
  });

  it('429 rate_limit_error with retry-after', async () => {
    const slow = await createAccount(gw, { tier: 'enterprise', rpm: 1, tpm: 1_000_000 });
    serveOpenAi({ json: completionBody('gpt-upstream-id', 'ok') });
    expect((await post({ model: GPT, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': slow.key })).status).toBe(200);
    const res = await post({ model: GPT, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': slow.key });
    await expectAnthropicError(res, 429, 'rate_limit_error');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });

  it('503 overloaded_error when the upstream is overloaded, 502 api_error when it fails, and the hold is released', async () => {
    anthropic.handler = () => ({ status: 529, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })] });
    await expectAnthropicError(await post({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), 503, 'overloaded_error');
    anthropic.handler = () => ({ status: 500, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'Internal server error' } })] });
    await expectAnthropicError(await post({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), 502, 'api_error');
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('405 invalid_request_error for another method on /v1/messages', async () => {
    await expectAnthropicError(await fetch(`${origin}/v1/messages`, { headers: { 'x-api-key': acct.key } }), 405, 'invalid_request_error');
  });

  it('leaves OpenAI routes as they were: their errors stay OpenAI’s, and x-api-key is not a key there', async () => {
    const res = await fetch(`${gw.baseUrl}/chat/completions`, { method: 'POST', headers: { 'x-api-key': acct.key, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(401);
    const body = await res.json();
    expect(openAiValidator('ErrorResponse')(body)).toBe(true);
    expect(body.error.type).toBe('authentication_error');
  });
});

describe('the books balance', () => {
  it('when the client goes away mid-stream on an Anthropic route: the upstream is cut and the prompt and the delivered output are billed', async () => {
    const frames: SseFrame[] = [
      TEXT_STREAM[0],
      TEXT_STREAM[1],
      ...Array.from({ length: 50 }, (_, i): SseFrame => ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `word${i} ` } }]),
      ...TEXT_STREAM.slice(5),
    ];
    serveAnthropicStream(frames, 20);
    const abort = new AbortController();
    const stream = client.messages.stream({ model: CLAUDE, max_tokens: 1000, messages: [{ role: 'user', content: 'long' }] }, { signal: abort.signal });
    let deltas = 0;
    const done = new Promise<void>((resolve) => {
      stream.on('text', () => {
        if (++deltas === 3) abort.abort();
      });
      stream.on('abort', () => resolve());
      stream.on('error', () => resolve());
      stream.on('end', () => resolve());
    });
    await done;
    const { response } = await stream.withResponse();
    await sleep(200);
    const entry = await ledgerEntry(response.headers.get('x-request-id')!);
    expect(entry.status).toBe('aborted');
    expect(entry.promptTokens).toBe(25);
    expect(entry.completionTokens).toBeGreaterThan(0);
    expect(entry.amountMicroUsd).toBeLessThan(0);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('when the client goes away mid-stream on a translated route', async () => {
    serveOpenAi({ sse: streamEvents('gpt-upstream-id', Array.from({ length: 50 }, (_, i) => `w${i} `)), gapMs: 20 });
    const abort = new AbortController();
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      signal: abort.signal,
      headers: { 'x-api-key': acct.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 500, stream: true, messages: [{ role: 'user', content: 'long' }] }),
    });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('w3 ')) text += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    await sleep(300);
    const entry = await ledgerEntry(res.headers.get('x-request-id')!);
    expect(entry.status).toBe('aborted');
    expect(entry.completionTokens).toBeGreaterThan(0);
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('when Anthropic fails mid-stream: the client gets an error event, and the delivered part is billed', async () => {
    serveAnthropicStream(OVERLOADED_MID_STREAM);
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: CLAUDE, max_tokens: 500, stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    const text = await res.text();
    expect(text).toContain('event: content_block_delta');
    const last = text.trim().split('\n\n').at(-1)!;
    expect(last.split('\n')[0]).toBe('event: error');
    expect(JSON.parse(last.split('\n')[1].slice(6))).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    const err = await client.messages.stream({ model: CLAUDE, max_tokens: 500, messages: [{ role: 'user', content: 'x' }] }).finalMessage().catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const entry = await ledgerEntry(res.headers.get('x-request-id')!);
    expect(entry).toMatchObject({ status: 'interrupted', promptTokens: 25 });
    expectBooksBalance(await books(gw, acct.accountId));
  });

  it('when an OpenAI-compatible upstream breaks off mid-stream', async () => {
    const events = streamEvents('gpt-upstream-id', ['a ', 'b ', 'c ']);
    serveOpenAi({ sse: events.slice(0, 3) });
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 500, stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    const frames = (await res.text()).trim().split('\n\n');
    expect(frames.at(-1)!.split('\n')[0]).toBe('event: error');
    expect(frames.map((f) => f.split('\n')[0])).not.toContain('event: message_stop');
    const entry = await ledgerEntry(res.headers.get('x-request-id')!);
    expect(entry.status).toBe('interrupted');
    expectBooksBalance(await books(gw, acct.accountId));
  });
});

describe('count_tokens, models and the pre-warm', () => {
  it('counts a prompt’s tokens by the model’s rules, without a hold or a ledger entry', async () => {
    const before = (await books(gw, acct.accountId)).requests.length;
    const small = await client.messages.countTokens({ model: CLAUDE, messages: [{ role: 'user', content: 'Hello' }] });
    const large = await client.messages.countTokens({ model: CLAUDE, system: 'You are a careful assistant. '.repeat(50), tools: TOOLS, messages: [{ role: 'user', content: 'Hello' }] });
    expect(small.input_tokens).toBeGreaterThan(0);
    expect(large.input_tokens).toBeGreaterThan(small.input_tokens + 250);
    expect((await books(gw, acct.accountId)).requests.length).toBe(before);
    const err = await client.messages.countTokens({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
  });

  it('serves Anthropic’s model list to Anthropic clients and OpenAI’s to OpenAI clients', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining([CLAUDE, GPT]));
    expect(page.data[0]).toEqual({ type: 'model', id: expect.any(String), display_name: expect.any(String), created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) });
    const raw = await (await fetch(`${gw.baseUrl}/models?limit=1`, { headers: { authorization: `Bearer ${acct.key}`, 'anthropic-version': '2023-06-01' } })).json();
    expect(raw).toMatchObject({ has_more: true, first_id: raw.data[0].id, last_id: raw.data[0].id });
    expect(raw.data).toHaveLength(1);
    expect((await client.models.retrieve(CLAUDE)).id).toBe(CLAUDE);

    const openAiShape = await (await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${acct.key}` } })).json();
    expect(openAiValidator('ListModelsResponse')(openAiShape)).toBe(true);
    expect(openAiShape.object).toBe('list');
  });

  it('answers Claude Code’s HEAD / at once, without a key', async () => {
    const res = await fetch(`${origin}/`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    expect((await fetch(`${origin}/`)).status).toBe(404);
  });
});

describe('the request deadline (ITAPI_MAX_REQUEST_S)', () => {
  let short: TestGateway;
  let account: TestAccount;

  beforeAll(async () => {
    short = await startTestGateway({
      catalog: catalogOf({
        models: {
          [CLAUDE]: {
            owned_by: 'anthropic',
            pricing: { input_per_mtok: 3, output_per_mtok: 15 },
            context_window: 200000,
            max_output_tokens: 8192,
            routes: [{ provider: 'anthropic', base_url: anthropicBase, model: 'claude-upstream-id' }],
          },
        },
      }),
      maxRequestMs: 1500,
    });
    account = await createAccount(short, { tier: 'enterprise', rpm: 1000, tpm: 10_000_000 });
  });

  afterAll(async () => {
    await short.stop();
  });

  it('ends an Anthropic stream that runs past it with a timeout_error event, and bills what was delivered', async () => {
    const slow: SseFrame[] = [
      TEXT_STREAM[0],
      TEXT_STREAM[1],
      ...Array.from({ length: 40 }, (_, i): SseFrame => ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `w${i} ` } }]),
      ...TEXT_STREAM.slice(5),
    ];
    serveAnthropicStream(slow, 100);
    const res = await fetch(`${short.baseUrl}/messages`, {
      method: 'POST',
      headers: { 'x-api-key': account.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: CLAUDE, max_tokens: 500, stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    const frames = (await res.text()).trim().split('\n\n');
    expect(frames.at(-1)!.split('\n')[0]).toBe('event: error');
    expect(JSON.parse(frames.at(-1)!.split('\n')[1].slice(6)).error.type).toBe('timeout_error');
    await short.gateway.background.drain();
    const entries = await short.gateway.stores.usage.requests(account.accountId, 0, Date.now() + 1000);
    expect(entries.at(-1)).toMatchObject({ status: 'interrupted', errorCode: 'upstream_timeout', promptTokens: 25 });
    expectBooksBalance(await books(short, account.accountId));
  });
});
