import OpenAI from 'openai';
import type { CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { defaultProviders } from '../../lambda/providers';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { validateResponse, validateResponseItemList } from '../support/openai-schema';
import { sse, streamOfMessage } from '../providers/anthropic/transcripts';
import { StandIn } from '../providers/stand-in';
import { eventStreamReply, jsonReply, route as bedrockRoute, testBedrockClient } from '../providers/bedrock/stand-in';
import type { BedrockEvent } from '../providers/bedrock/transcripts';
import { bedrockAnswerProvider } from '../../lambda/providers/bedrock';
import { expectWellFormedStream, parseResponseEvents, warmResponseValidators } from './support';

/**
 * Nothing lost on `/v1/responses` on a Claude route (issue 18, item 5): the provider's thinking
 * becomes reasoning items ahead of the call it led to (with or without `include`), carried in
 * `encrypted_content` when `include` asks; sent back in any of the three ways a client can (the
 * items themselves, `previous_response_id`, `item_reference`), it reaches Claude unchanged and in
 * order ahead of `tool_use`, with thinking on at the requested effort. Usage counts cache reads and
 * writes as the Responses clients are promised. A loopback Anthropic stand-in, the real openai client.
 */
const anthropic = new StandIn('http1');
const bedrock = new StandIn('h2c');
let gw: TestGateway;
let acct: TestAccount;
let client: OpenAI;

const MODEL = 'claude-3-5-sonnet-20241022';
const TOOLS: OpenAI.Responses.FunctionTool[] = [
  { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } }, strict: false },
];
const THINKING = { type: 'thinking', thinking: 'The user wants the weather; I should call get_weather.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' };
const REDACTED = { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' };
const TOOL_USE = { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'Paris' } };
/** Anthropic counts input without cache reads and writes. */
const USAGE = { input_tokens: 120, cache_read_input_tokens: 50, cache_creation_input_tokens: 100, output_tokens: 310 };

const THINKING_TOOL_MESSAGE = {
  id: 'msg_01ThinkThenCall',
  type: 'message',
  role: 'assistant',
  model: MODEL,
  content: [THINKING, REDACTED, TOOL_USE],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: USAGE,
};

const THINKING_TOOL_STREAM = streamOfMessage(THINKING_TOOL_MESSAGE);

const FINAL_MESSAGE = {
  ...THINKING_TOOL_MESSAGE,
  id: 'msg_01Answer',
  content: [{ type: 'text', text: 'It is sunny in Paris.' }],
  stop_reason: 'end_turn',
  usage: { input_tokens: 200, output_tokens: 12 },
};

const QUESTION = 'Weather in Paris?';
const SETTINGS = { model: MODEL, tools: TOOLS, reasoning: { effort: 'high' as const }, max_output_tokens: 20_000 };
const TOOL_OUTPUT = '{"sky": "sunny"}';

beforeAll(async () => {
  warmResponseValidators();
  const [url, bedrockUrl] = await Promise.all([anthropic.start(), bedrock.start()]);
  const catalog: CatalogFile = {
    models: {
      [MODEL]: { ...DEFAULT_CATALOG.models[MODEL], routes: [{ provider: 'anthropic', base_url: url, model: MODEL }] },
      [BEDROCK_MODEL]: { ...DEFAULT_CATALOG.models[MODEL], routes: [{ provider: 'bedrock', base_url: bedrockUrl, model: BEDROCK_CLAUDE, region: 'us-east-1' }] },
    },
  };
  // Bedrock's canonical provider (reasoning blocks kept), as the registry will hold it once the pipeline takes AnswerProviders.
  gw = await startTestGateway({ catalog: catalogOf(catalog), providers: { ...defaultProviders(), bedrock: bedrockAnswerProvider({ createClient: testBedrockClient }) } });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
  await Promise.all([anthropic.stop(), bedrock.stop()]);
});

const json = (body: unknown) => ({ status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(body)] });
const stream = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(THINKING_TOOL_STREAM) });

type Body = { thinking?: unknown; messages: Array<{ role: string; content: unknown }> };

/** What Claude must get on the tool turn: its own blocks, unchanged and in order ahead of tool_use, thinking on at the effort asked. */
function expectThinkingKept(body: Body) {
  expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 16_384 });
  expect(body.messages).toEqual([
    { role: 'user', content: [{ type: 'text', text: QUESTION }] },
    { role: 'assistant', content: [THINKING, REDACTED, TOOL_USE] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: TOOL_USE.id, content: TOOL_OUTPUT }] },
  ]);
}

/** The output of the thinking tool turn: two reasoning items, then the call, in Claude's order. */
function expectReasoningFirst(response: OpenAI.Responses.Response, includeEncrypted: boolean) {
  expect(response.output.map((item) => item.type)).toEqual(['reasoning', 'reasoning', 'function_call']);
  const [thought, redacted, call] = response.output as [OpenAI.Responses.ResponseReasoningItem, OpenAI.Responses.ResponseReasoningItem, OpenAI.Responses.ResponseFunctionToolCall];
  expect(thought.summary).toEqual([{ type: 'summary_text', text: THINKING.thinking }]);
  expect(redacted.summary).toEqual([]);
  expect(thought.id).toMatch(/^rs_/);
  if (includeEncrypted) {
    expect(thought.encrypted_content).toEqual(expect.any(String));
    expect(redacted.encrypted_content).toEqual(expect.any(String));
  } else {
    expect(thought.encrypted_content ?? undefined).toBeUndefined();
    expect(redacted.encrypted_content ?? undefined).toBeUndefined();
  }
  expect(call).toMatchObject({ call_id: TOOL_USE.id, name: 'get_weather' });
  expect(JSON.parse(call.arguments)).toEqual(TOOL_USE.input);
  // Reads and writes are input; the reads cached_tokens, the writes cache_write_tokens.
  expect(response.usage).toMatchObject({ input_tokens: 270, input_tokens_details: { cached_tokens: 50, cache_write_tokens: 100 }, output_tokens: 310, total_tokens: 580 });
}

function toolOutput(call: OpenAI.Responses.ResponseOutputItem): OpenAI.Responses.ResponseInputItem {
  return { type: 'function_call_output', call_id: (call as OpenAI.Responses.ResponseFunctionToolCall).call_id, output: TOOL_OUTPUT };
}

describe('thinking kept across a tool-call turn on an Anthropic route, through /v1/responses', () => {
  it('answers reasoning items ahead of the call without include, and keeps thinking on when previous_response_id brings them back', async () => {
    anthropic.handler = () => json(THINKING_TOOL_MESSAGE);
    const first = await client.responses.create({ ...SETTINGS, input: QUESTION });
    validateResponse(JSON.parse(JSON.stringify(first)));
    expectReasoningFirst(first, false);
    expect(anthropic.lastJson()).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 16_384 } });

    anthropic.handler = () => json(FINAL_MESSAGE);
    const second = await client.responses.create({ ...SETTINGS, previous_response_id: first.id, input: [toolOutput(first.output[2])] });
    expect(second.output_text).toBe('It is sunny in Paris.');
    expectThinkingKept(anthropic.lastJson());
    // The stored response reads back as it was answered: no encrypted_content the client did not ask for.
    const stored = await client.responses.retrieve(first.id);
    expect(stored.output).toEqual(first.output);
  });

  it('carries the signature and the redacted block in encrypted_content with include, and the items sent back keep thinking on', async () => {
    anthropic.handler = () => json(THINKING_TOOL_MESSAGE);
    const first = await client.responses.create({ ...SETTINGS, input: QUESTION, include: ['reasoning.encrypted_content'], store: false });
    expectReasoningFirst(first, true);

    anthropic.handler = () => json(FINAL_MESSAGE);
    const input = [{ role: 'user', content: QUESTION }, ...first.output, toolOutput(first.output[2])] as OpenAI.Responses.ResponseInput;
    await client.responses.create({ ...SETTINGS, input, store: false });
    expectThinkingKept(anthropic.lastJson());
  });

  it('keeps thinking on when item_reference names the stored reasoning items and the call', async () => {
    anthropic.handler = () => json(THINKING_TOOL_MESSAGE);
    const first = await client.responses.create({ ...SETTINGS, input: QUESTION });

    anthropic.handler = () => json(FINAL_MESSAGE);
    const references = first.output.map((item): OpenAI.Responses.ResponseInputItem.ItemReference => ({ type: 'item_reference', id: item.id! }));
    const second = await client.responses.create({ ...SETTINGS, input: [{ role: 'user', content: QUESTION }, ...references, toolOutput(first.output[2])] });
    expectThinkingKept(anthropic.lastJson());
    // The referenced items are the second response's input items, reasoning items included, valid for the spec.
    const listed = await client.responses.inputItems.list(second.id, { order: 'asc' });
    validateResponseItemList(JSON.parse(JSON.stringify({ object: 'list', data: listed.data, first_id: listed.data[0].id, last_id: listed.data.at(-1)!.id, has_more: false })));
    expect(listed.data.map((item) => item.type)).toEqual(['message', 'reasoning', 'reasoning', 'function_call', 'function_call_output']);
  });

  it('streams the thinking as reasoning items (summary deltas, encrypted_content with include), and the streamed response continues with thinking on', async () => {
    anthropic.handler = stream;
    const res = await fetch(`${gw.baseUrl}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...SETTINGS, input: QUESTION, stream: true, include: ['reasoning.encrypted_content'] }),
    });
    const events = parseResponseEvents(await res.text());
    const last = expectWellFormedStream(events);
    expect(last.type).toBe('response.completed');
    expectReasoningFirst(last.response, true);
    expect(events.filter((e) => e.type === 'response.reasoning_summary_text.delta').map((e) => e.delta).join('')).toBe(THINKING.thinking);
    const done = events.filter((e) => e.type === 'response.output_item.done').map((e) => e.item);
    expect(done).toEqual(last.response.output);

    anthropic.handler = () => json(FINAL_MESSAGE);
    await client.responses.create({ ...SETTINGS, previous_response_id: last.response.id, input: [toolOutput(last.response.output[2])] });
    expectThinkingKept(anthropic.lastJson());
  });

  it('keeps thinking through previous_response_id after a stream without include, with the openai client’s stream helper', async () => {
    anthropic.handler = stream;
    const runner = client.responses.stream({ ...SETTINGS, input: QUESTION });
    const final = await runner.finalResponse();
    expectReasoningFirst(final, false);

    anthropic.handler = () => json(FINAL_MESSAGE);
    await client.responses.create({ ...SETTINGS, previous_response_id: final.id, input: [toolOutput(final.output[2])] });
    expectThinkingKept(anthropic.lastJson());
  });
});

// ---- the same on Claude through Bedrock (Converse) ------------------------------------------------

const BEDROCK_MODEL = 'claude-on-bedrock';
const BEDROCK_CLAUDE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const REDACTED_BYTES = Buffer.from('opaque redacted thinking bytes').toString('base64');
const CONVERSE_USAGE = { inputTokens: 120, outputTokens: 310, totalTokens: 580, cacheReadInputTokens: 50, cacheWriteInputTokens: 100 };
const CONVERSE_TOOL_TURN = {
  output: {
    message: {
      role: 'assistant',
      content: [
        { reasoningContent: { reasoningText: { text: THINKING.thinking, signature: THINKING.signature } } },
        { reasoningContent: { redactedContent: REDACTED_BYTES } },
        { toolUse: { toolUseId: TOOL_USE.id, name: TOOL_USE.name, input: TOOL_USE.input } },
      ],
    },
  },
  stopReason: 'tool_use',
  usage: CONVERSE_USAGE,
  metrics: { latencyMs: 900 },
};
const CONVERSE_TOOL_STREAM: BedrockEvent[] = [
  ['messageStart', { role: 'assistant' }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: THINKING.thinking.slice(0, 20) } } }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: THINKING.thinking.slice(20) } } }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: THINKING.signature } } }],
  ['contentBlockStop', { contentBlockIndex: 0 }],
  ['contentBlockDelta', { contentBlockIndex: 1, delta: { reasoningContent: { redactedContent: REDACTED_BYTES } } }],
  ['contentBlockStop', { contentBlockIndex: 1 }],
  ['contentBlockStart', { contentBlockIndex: 2, start: { toolUse: { toolUseId: TOOL_USE.id, name: TOOL_USE.name } } }],
  ['contentBlockDelta', { contentBlockIndex: 2, delta: { toolUse: { input: JSON.stringify(TOOL_USE.input) } } }],
  ['contentBlockStop', { contentBlockIndex: 2 }],
  ['messageStop', { stopReason: 'tool_use' }],
  ['metadata', { usage: CONVERSE_USAGE, metrics: { latencyMs: 900 } }],
];
const CONVERSE_FINAL = { ...CONVERSE_TOOL_TURN, output: { message: { role: 'assistant', content: [{ text: 'It is sunny in Paris.' }] } }, stopReason: 'end_turn' };
const BEDROCK = { ...SETTINGS, model: BEDROCK_MODEL };

type ConverseBody = { messages: Array<{ role: string; content: unknown[] }>; additionalModelRequestFields?: { thinking?: unknown } };

/** Converse gets Claude's own reasoning blocks, unchanged and in order ahead of toolUse, with thinking on. */
function expectConverseThinkingKept(body: ConverseBody) {
  expect(body.additionalModelRequestFields?.thinking).toEqual({ type: 'enabled', budget_tokens: expect.any(Number) });
  expect(body.messages[1]).toEqual({
    role: 'assistant',
    content: [
      { reasoningContent: { reasoningText: { text: THINKING.thinking, signature: THINKING.signature } } },
      { reasoningContent: { redactedContent: REDACTED_BYTES } },
      { toolUse: { toolUseId: TOOL_USE.id, name: TOOL_USE.name, input: TOOL_USE.input } },
    ],
  });
  expect(body.messages[2]).toEqual({ role: 'user', content: [{ toolResult: { toolUseId: TOOL_USE.id, content: [{ text: TOOL_OUTPUT }] } }] });
}

describe('thinking kept across a tool-call turn on a Bedrock Claude route, through /v1/responses', () => {
  it('answers reasoning items ahead of the call, and keeps thinking on through previous_response_id, the items, and item_reference', async () => {
    bedrockRoute(bedrock, { converse: jsonReply(CONVERSE_TOOL_TURN) });
    const first = await client.responses.create({ ...BEDROCK, input: QUESTION });
    validateResponse(JSON.parse(JSON.stringify(first)));
    expectReasoningFirst(first, false);
    const withInclude = await client.responses.create({ ...BEDROCK, input: QUESTION, include: ['reasoning.encrypted_content'], store: false });
    expectReasoningFirst(withInclude, true);

    bedrockRoute(bedrock, { converse: jsonReply(CONVERSE_FINAL) });
    await client.responses.create({ ...BEDROCK, previous_response_id: first.id, input: [toolOutput(first.output[2])] });
    expectConverseThinkingKept(bedrock.lastJson());
    await client.responses.create({ ...BEDROCK, input: [{ role: 'user', content: QUESTION }, ...withInclude.output, toolOutput(withInclude.output[2])] as OpenAI.Responses.ResponseInput, store: false });
    expectConverseThinkingKept(bedrock.lastJson());
    const references = first.output.map((item): OpenAI.Responses.ResponseInputItem.ItemReference => ({ type: 'item_reference', id: item.id! }));
    await client.responses.create({ ...BEDROCK, input: [{ role: 'user', content: QUESTION }, ...references, toolOutput(first.output[2])] });
    expectConverseThinkingKept(bedrock.lastJson());
  });

  it('streams the reasoning items from ConverseStream, and the streamed response continues with thinking on', async () => {
    bedrockRoute(bedrock, { stream: eventStreamReply(CONVERSE_TOOL_STREAM) });
    const final = await client.responses.stream({ ...BEDROCK, input: QUESTION }).finalResponse();
    expectReasoningFirst(final, false);

    bedrockRoute(bedrock, { converse: jsonReply(CONVERSE_FINAL) });
    await client.responses.create({ ...BEDROCK, previous_response_id: final.id, input: [toolOutput(final.output[2])] });
    expectConverseThinkingKept(bedrock.lastJson());
  });
});
