import Anthropic from '@anthropic-ai/sdk';
import type { CatalogFile } from '../../lambda/catalog';
import { bedrockAnswerProvider } from '../../lambda/providers/bedrock';
import { defaultProviders } from '../../lambda/providers';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { sse, streamOfMessage } from '../providers/anthropic/transcripts';
import { StandIn } from '../providers/stand-in';
import { eventStreamReply, jsonReply, route as bedrockRoute, testBedrockClient } from '../providers/bedrock/stand-in';
import { sleep } from '../reliability/support';

/**
 * Issue 18, `/v1/messages` on the one pipeline: nothing the provider sent is lost between the
 * wires. Claude's thinking survives a tool-call turn on Anthropic and Bedrock routes; an
 * OpenAI-compatible upstream's `reasoning_content` becomes thinking blocks; usage is counted as
 * Anthropic counts it; failures and aborts end as Anthropic's clients expect, settled once.
 */
const anthropic = new StandIn('http1');
const openai = new StandIn('http1');
const bedrock = new StandIn('h2c');
let gw: TestGateway;
let acct: TestAccount;
let origin: string;
let client: Anthropic;

const CLAUDE = 'claude-direct';
const BEDROCK_CLAUDE = 'claude-on-bedrock';
const GPT = 'gpt-reasoner';

const TOOLS: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather in a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }];
const THINKING = { type: 'thinking', thinking: 'The user wants the weather; I should call get_weather.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' } as const;
const REDACTED = { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' } as const;
const TOOL_USE = { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { city: 'Paris' } } as const;

const THINKING_TOOL_STREAM = streamOfMessage({ id: 'msg_01Think', model: 'claude-upstream', content: [THINKING, REDACTED, TOOL_USE], stop_reason: 'tool_use', usage: { input_tokens: 120, output_tokens: 310 } });

const FINAL_MESSAGE = {
  id: 'msg_01Answer',
  type: 'message',
  role: 'assistant',
  model: 'claude-upstream',
  content: [{ type: 'text', text: 'It is sunny in Paris.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 400, output_tokens: 8 },
};

beforeAll(async () => {
  const anthropicUrl = await anthropic.start();
  const openaiUrl = await openai.start();
  const bedrockUrl = await bedrock.start();
  const claude = { owned_by: 'anthropic', pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }, context_window: 200000, max_output_tokens: 8192 };
  const catalog: CatalogFile = {
    models: {
      [CLAUDE]: { ...claude, routes: [{ provider: 'anthropic', base_url: anthropicUrl, secret: 'anthropic', model: 'claude-upstream' }] },
      [BEDROCK_CLAUDE]: { ...claude, routes: [{ provider: 'bedrock', base_url: bedrockUrl, model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', region: 'us-east-1' }] },
      [GPT]: {
        owned_by: 'openai',
        pricing: { input_per_mtok: 2, output_per_mtok: 8, cached_input_per_mtok: 0.5 },
        context_window: 128000,
        max_output_tokens: 4096,
        routes: [{ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'deepseek-reasoner' }],
      },
    },
  };
  const bedrockProvider = bedrockAnswerProvider({ createClient: testBedrockClient });
  gw = await startTestGateway({
    catalog: catalogOf(catalog),
    providers: { ...defaultProviders(), bedrock: bedrockProvider },
    env: { ITAPI_ADMIN_TOKEN: 'test-admin-nothing-lost', ITAPI_SECRET_ANTHROPIC: 'sk-ant-upstream-test' },
  });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  origin = gw.baseUrl.replace(/\/v1$/, '');
  client = new Anthropic({ baseURL: origin, apiKey: acct.key, maxRetries: 0 });
  // A gateway, three stand-ins and DynamoDB Local on a shared, loaded machine.
}, 90_000);

afterAll(async () => {
  await gw.stop();
  await anthropic.stop();
  await openai.stop();
  await bedrock.stop();
});

async function ledger(requestId: string) {
  await gw.gateway.background.drain();
  const entries = await gw.gateway.stores.usage.requests(acct.accountId, 0, Date.now() + 1000);
  return entries.filter((e) => e.id === requestId);
}

/** Server-sent events as a client reads them off the wire: the `event:` name and the data, parsed. */
function framesOf(text: string): Array<{ event: string; data: any }> {
  return text
    .split('\n\n')
    .filter((f) => f.trim())
    .map((f) => ({ event: /^event: (.*)$/m.exec(f)?.[1] ?? '', data: JSON.parse(/^data: (.*)$/m.exec(f)?.[1] ?? 'null') }));
}

function chatChunks(deltas: Array<Record<string, unknown>>, finish: string, usage: Record<string, unknown>): string[] {
  const base = { id: 'chatcmpl-r1', object: 'chat.completion.chunk', created: 1735689600, model: 'deepseek-reasoner' };
  const chunk = (delta: object, finishReason: string | null = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] });
  return [
    chunk({ role: 'assistant', content: '' }),
    ...deltas.map((d) => chunk(d)),
    chunk({}, finish),
    { ...base, choices: [], usage },
  ]
    .map((e) => `data: ${JSON.stringify(e)}\n\n`)
    .concat('data: [DONE]\n\n');
}

const serveOpenAi = (parts: string[], extra: { gapMs?: number; hang?: 'after_parts' } = {}) => {
  openai.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts, ...extra });
};

describe('a tool-call continuation keeps Claude’s thinking', () => {
  it('on an Anthropic route: the events reach the SDK as sent, and the blocks go back unchanged, in order, ahead of tool_use, thinking on', async () => {
    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(THINKING_TOOL_STREAM) });
    const first: Anthropic.MessageCreateParams = {
      model: CLAUDE,
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      tools: TOOLS,
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    };
    const raw = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'interleaved-thinking-2025-05-14', 'content-type': 'application/json' },
      body: JSON.stringify({ ...first, stream: true }),
    });
    const frames = framesOf(await raw.text());
    // Relayed untouched: the upstream's events, one for one, the model id the gateway's.
    expect(frames.map((f) => f.data)).toEqual(
      THINKING_TOOL_STREAM.map(([, data]) => (data.type === 'message_start' ? { ...data, message: { ...(data.message as object), model: CLAUDE } } : data)),
    );
    expect(anthropic.requests.at(-1)!.headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14');

    const stream = client.messages.stream(first);
    const answer = await stream.finalMessage();
    expect(answer.content).toEqual([THINKING, REDACTED, TOOL_USE]);

    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(FINAL_MESSAGE)] });
    const next = await client.messages.create({
      ...first,
      messages: [...first.messages, { role: 'assistant', content: answer.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: TOOL_USE.id, content: '18°C, sunny' }] }],
    });
    expect(next.content).toEqual([{ type: 'text', text: 'It is sunny in Paris.' }]);
    expect(next.model).toBe(CLAUDE);
    const sent = JSON.parse(anthropic.requests.at(-1)!.body.toString('utf8'));
    expect(sent.messages[1]).toEqual({ role: 'assistant', content: [THINKING, REDACTED, TOOL_USE] });
    expect(sent.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
    expect(sent.model).toBe('claude-upstream');
  });

  it('on a Bedrock route: thinking comes as thinking blocks, and goes back as reasoningContent ahead of toolUse, thinking on', async () => {
    const redacted = Buffer.from('opaque-redacted-bytes').toString('base64');
    bedrockRoute(bedrock, {
      converse: jsonReply({
        output: {
          message: {
            role: 'assistant',
            content: [
              { reasoningContent: { reasoningText: { text: THINKING.thinking, signature: THINKING.signature } } },
              { reasoningContent: { redactedContent: redacted } },
              { toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } } },
            ],
          },
        },
        stopReason: 'tool_use',
        usage: { inputTokens: 900, outputTokens: 120, totalTokens: 1020, cacheReadInputTokens: 300, cacheWriteInputTokens: 200 },
        metrics: { latencyMs: 10 },
      }),
    });
    const first: Anthropic.MessageCreateParams = {
      model: BEDROCK_CLAUDE,
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      tools: TOOLS,
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    };
    const answer = await client.messages.create(first);
    expect(answer.content).toEqual([
      { type: 'thinking', thinking: THINKING.thinking, signature: THINKING.signature },
      { type: 'redacted_thinking', data: redacted },
      { type: 'tool_use', id: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } },
    ]);
    // Anthropic's count: input_tokens without the cache reads and writes.
    expect(answer.usage).toMatchObject({ input_tokens: 900, cache_read_input_tokens: 300, cache_creation_input_tokens: 200, output_tokens: 120 });

    bedrockRoute(bedrock, {
      converse: jsonReply({ output: { message: { role: 'assistant', content: [{ text: 'Sunny.' }] } }, stopReason: 'end_turn', usage: { inputTokens: 50, outputTokens: 2, totalTokens: 52 }, metrics: { latencyMs: 5 } }),
    });
    await client.messages.create({
      ...first,
      messages: [...first.messages, { role: 'assistant', content: answer.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'tooluse_1', content: '18°C' }] }],
    });
    const sent = JSON.parse(bedrock.requests.at(-1)!.body.toString('utf8'));
    expect(sent.messages[1].content).toEqual([
      { reasoningContent: { reasoningText: { text: THINKING.thinking, signature: THINKING.signature } } },
      { reasoningContent: { redactedContent: redacted } },
      { toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } } },
    ]);
    expect(sent.additionalModelRequestFields).toEqual({ thinking: { type: 'enabled', budget_tokens: 2048 } });
  });
});

describe('summarized thinking cut short', () => {
  it('on a Bedrock route: a client leaving mid-thinking is charged the whole budget sent (the one upward rule)', async () => {
    bedrockRoute(bedrock, {
      stream: eventStreamReply(
        [
          ['messageStart', { role: 'assistant' }],
          ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'Let me think about ' } } }],
          ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'the weather in Paris.' } } }],
          ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'sig-b' } } }],
          ['contentBlockStop', { contentBlockIndex: 0 }],
          ['contentBlockDelta', { contentBlockIndex: 1, delta: { text: 'Sunny.' } }],
          ['contentBlockStop', { contentBlockIndex: 1 }],
          ['messageStop', { stopReason: 'end_turn' }],
          ['metadata', { usage: { inputTokens: 40, outputTokens: 2500, totalTokens: 2540 }, metrics: { latencyMs: 10 } }],
        ],
        [],
        200,
      ),
    });
    const abort = new AbortController();
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: BEDROCK_CLAUDE, max_tokens: 4096, stream: true, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: [{ role: 'user', content: 'Weather?' }] }),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('thinking_delta')) seen += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    await sleep(800);
    const entries = await ledger(res.headers.get('request-id')!);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ status: 'aborted' });
    // The budget sent (2,048) plus no answer text yet: what Bedrock bills for thinking it summarized.
    expect(entries[0].completionTokens).toBe(2048);
  });
});

describe('an OpenAI-compatible route', () => {
  const REASONING_DELTAS = [{ reasoning_content: 'Paris is in France; ' }, { reasoning_content: 'answer briefly.' }, { content: 'It is ' }, { content: 'Paris.' }];
  const USAGE = { prompt_tokens: 1000, completion_tokens: 40, total_tokens: 1040, prompt_tokens_details: { cached_tokens: 400 }, completion_tokens_details: { reasoning_tokens: 30 } };

  it('streams reasoning_content as a thinking block before the text when the client enabled thinking; usage as Anthropic counts it', async () => {
    serveOpenAi(chatChunks(REASONING_DELTAS, 'stop', USAGE));
    const stream = client.messages.stream({ model: GPT, max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'Capital of France?' }] });
    const answer = await stream.finalMessage();
    expect(answer.content).toEqual([
      { type: 'thinking', thinking: 'Paris is in France; answer briefly.', signature: '' },
      { type: 'text', text: 'It is Paris.' },
    ]);
    expect(answer.model).toBe(GPT);
    // input_tokens excludes the cache reads (Anthropic's count); the reads are their own field.
    expect(answer.usage).toMatchObject({ input_tokens: 600, cache_read_input_tokens: 400, output_tokens: 40 });
    // Nothing of thinking went to the upstream that does not read it.
    const sent = openai.lastJson();
    expect(sent).not.toHaveProperty('thinking');
    expect(sent).not.toHaveProperty('reasoning_effort');
  });

  it('leaves the thinking out when the client did not enable it, and charges it all the same', async () => {
    serveOpenAi(chatChunks(REASONING_DELTAS, 'stop', USAGE));
    const res = await client.messages.stream({ model: GPT, max_tokens: 2000, messages: [{ role: 'user', content: 'Capital of France?' }] }).withResponse();
    const answer = await res.data.finalMessage();
    expect(answer.content).toEqual([{ type: 'text', text: 'It is Paris.' }]);
    const [entry] = await ledger(res.response.headers.get('request-id')!);
    expect(entry).toMatchObject({ promptTokens: 1000, cachedTokens: 400, completionTokens: 40 });
  });

  it('answers JSON with the message’s reasoning_content as a thinking block first', async () => {
    openai.handler = () => ({
      status: 200,
      headers: { 'content-type': 'application/json' },
      parts: [
        JSON.stringify({
          id: 'chatcmpl-r2',
          object: 'chat.completion',
          created: 1735689600,
          model: 'deepseek-reasoner',
          choices: [{ index: 0, message: { role: 'assistant', content: 'Paris.', reasoning_content: 'Easy: Paris.', refusal: null }, logprobs: null, finish_reason: 'stop' }],
          usage: USAGE,
        }),
      ],
    });
    const answer = await client.messages.create({ model: GPT, max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'Capital of France?' }] });
    expect(answer.content).toEqual([
      { type: 'thinking', thinking: 'Easy: Paris.', signature: '' },
      { type: 'text', text: 'Paris.' },
    ]);
    expect(answer.usage).toMatchObject({ input_tokens: 600, cache_read_input_tokens: 400 });
  });

  it('does not send output_config.effort as reasoning_effort, and names it in x-itapi-ignored', async () => {
    serveOpenAi(chatChunks([{ content: 'Paris.' }], 'stop', { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 }));
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 100, stream: true, output_config: { effort: 'high' }, messages: [{ role: 'user', content: 'Capital?' }] }),
    });
    await res.text();
    expect(res.headers.get('x-itapi-ignored')).toBe('output_config.effort');
    expect(openai.lastJson()).not.toHaveProperty('reasoning_effort');
  });

  it('ends a stream the upstream cuts mid-way with Anthropic’s error event, settled once', async () => {
    // Two deltas, then the connection ends without finish or [DONE].
    serveOpenAi(chatChunks([{ content: 'It is ' }, { content: 'Par' }], 'stop', USAGE).slice(0, 3));
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'Capital?' }] }),
    });
    const frames = framesOf(await res.text());
    expect(frames.slice(0, 2).map((f) => f.event)).toEqual(['message_start', 'ping']);
    expect(frames.map((f) => f.data.delta?.text).filter(Boolean).join('')).toBe('It is Par');
    expect(frames.at(-1)).toEqual({ event: 'error', data: { type: 'error', error: { type: 'api_error', message: expect.any(String) } } });
    expect(frames.some((f) => f.event === 'message_stop')).toBe(false);
    const entries = await ledger(res.headers.get('request-id')!);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ status: 'interrupted' });
    // The delivered text is charged (no usage came).
    expect(entries[0].completionTokens).toBeGreaterThan(0);
  });

  it('settles a client abort once, charging what was delivered, and stops the upstream', async () => {
    const before = await gw.gateway.stores.accounts.get(acct.accountId);
    serveOpenAi(chatChunks([{ content: 'one ' }, { content: 'two ' }, { content: 'three ' }, { content: 'four' }], 'stop', USAGE), { gapMs: 150 });
    const abort = new AbortController();
    const res = await fetch(`${origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': acct.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: GPT, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'Count.' }] }),
      signal: abort.signal,
    });
    const requestId = res.headers.get('request-id')!;
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('one ')) seen += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    await sleep(800);
    const entries = await ledger(requestId);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ status: 'aborted', errorCode: 'client_closed' });
    expect(entries[0].completionTokens).toBeGreaterThan(0);
    // Nothing left held: the hold was settled, once.
    const after = await gw.gateway.stores.accounts.get(acct.accountId);
    expect(after?.heldMicroUsd ?? 0).toBe(before?.heldMicroUsd ?? 0);
    expect(after!.balanceMicroUsd).toBe(before!.balanceMicroUsd + entries[0].amountMicroUsd);
  });
});
